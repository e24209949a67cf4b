//! Frozen trunk features of un-augmented images, in evaluation mode (running BatchNorm stats).

use crate::data::LabelledImages;
use crate::model::ResidualTrunk;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// Features (`n x out_dim`, row-major) of every image, computed `batch` images at a time.
pub fn trunk_features<B: Backend>(
    trunk: &ResidualTrunk<B>,
    images: &LabelledImages,
    batch: usize,
    device: &B::Device,
) -> Vec<f32> {
    let (c, h, w) = (images.channels, images.height, images.width);
    let per = c * h * w;
    let n = images.len();
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let end = (start + batch.max(1)).min(n);
        let data = TensorData::new(
            images.images[start * per..end * per].to_vec(),
            [end - start, c, h, w],
        );
        let x = Tensor::<B, 4>::from_data(data, device);
        let f = trunk.forward(x).into_data().convert::<f32>();
        out.extend_from_slice(f.as_slice::<f32>().expect("f32 after convert"));
        start = end;
    }
    out
}
