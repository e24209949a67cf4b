//! Turning `DataArgs` into a frame source: the one place that knows which flag means which
//! reader, for pretraining (`open_source`) and for labelled evaluation (`open_labelled_source`).

use super::args::DataArgs;
use super::cifar::CifarSource;
use super::fetch::{self, FASHION_MNIST_FILES};
use super::folder::FolderSource;
use super::idx::IdxSource;
use super::labelled::Split;
use super::spec::DataSpec;
use super::stl::{StlSource, StlSplit};
use super::stream::RawStreamSource;
use super::synthetic::SyntheticSource;
use super::{DataError, FrameSource};
use std::path::{Path, PathBuf};

/// Side and channels of the built-in synthetic images.
const SYNTHETIC_SIDE: usize = 32;
const SYNTHETIC_CHANNELS: usize = 3;
const SYNTHETIC_CLASSES: usize = 10;

/// The frames to pretrain on: `--stream`, else `--frames`, else `--data` (its training split,
/// or STL-10's chosen split). Fashion-MNIST is fetched into `cache_dir` if it is not there.
pub fn open_source(args: &DataArgs, cache_dir: &Path) -> Result<Box<dyn FrameSource>, DataError> {
    if let Some(stream) = &args.stream {
        let size = args.stream_size.ok_or_else(|| {
            DataError::Invalid(format!(
                "--stream {stream} needs --stream-size WIDTHxHEIGHT (raw frames carry no header)"
            ))
        })?;
        return Ok(Box::new(RawStreamSource::open(
            stream,
            args.stream_format,
            size.width,
            size.height,
            args.stream_every,
        )?));
    }
    if let Some(dir) = &args.frames {
        return Ok(Box::new(FolderSource::open(dir, args.strict_images)?));
    }
    match &args.data {
        DataSpec::Stl10 { dir, split } => Ok(Box::new(StlSource::open_dir(dir, *split)?)),
        DataSpec::Idx { images, labels } => {
            Ok(Box::new(IdxSource::open(images, labels.as_deref())?))
        }
        _ => open_labelled_source(args, Split::Train, cache_dir),
    }
}

/// The labelled `split` of the dataset `args` names, for evaluation:
/// Fashion-MNIST train/t10k files; for `idx:` the given files (train) or their `t10k`
/// counterparts (test); CIFAR-10 data batches or test batch; STL-10 train or test; for
/// `--frames DIR` the `DIR/train` and `DIR/test` sub-folders (DIR itself as train if it has no
/// such sub-folders). Streams have no labels.
pub fn open_labelled_source(
    args: &DataArgs,
    split: Split,
    cache_dir: &Path,
) -> Result<Box<dyn FrameSource>, DataError> {
    if let Some(stream) = &args.stream {
        return Err(DataError::Invalid(format!(
            "--stream {stream}: a raw stream has no labels; evaluate on --data or --frames"
        )));
    }
    if let Some(dir) = &args.frames {
        let sub = dir.join(match split {
            Split::Train => "train",
            Split::Test => "test",
        });
        return match (split, sub.is_dir()) {
            (_, true) => Ok(Box::new(FolderSource::open(&sub, args.strict_images)?)),
            (Split::Train, false) => Ok(Box::new(FolderSource::open(dir, args.strict_images)?)),
            (Split::Test, false) => Err(DataError::format(
                dir,
                "no test/ sub-folder: put test images in DIR/test/CLASS/, or hold out part of \
                 the training images (LabelledImages::holdout_split)",
            )),
        };
    }
    match &args.data {
        DataSpec::FashionMnist => {
            let dir = fetch::ensure_fashion_mnist(cache_dir)?;
            let [train_x, train_y, test_x, test_y] = FASHION_MNIST_FILES;
            let (x, y) = match split {
                Split::Train => (train_x, train_y),
                Split::Test => (test_x, test_y),
            };
            Ok(Box::new(IdxSource::open(&dir.join(x), Some(&dir.join(y)))?))
        }
        DataSpec::Idx { images, labels } => {
            let Some(labels) = labels else {
                return Err(DataError::format(
                    images,
                    "no label file: use --data idx:IMAGES,LABELS for labelled evaluation",
                ));
            };
            let (x, y) = match split {
                Split::Train => (images.clone(), labels.clone()),
                Split::Test => (test_counterpart(images)?, test_counterpart(labels)?),
            };
            Ok(Box::new(IdxSource::open(&x, Some(&y))?))
        }
        DataSpec::Cifar10 { dir } => {
            Ok(Box::new(CifarSource::open_dir(dir, split == Split::Train)?))
        }
        DataSpec::Stl10 { dir, .. } => {
            let stl_split = match split {
                Split::Train => StlSplit::Train,
                Split::Test => StlSplit::Test,
            };
            Ok(Box::new(StlSource::open_dir(dir, stl_split)?))
        }
        DataSpec::Synthetic { count } => {
            // A different seed gives fresh images from the same class layouts.
            let (n, seed) = match split {
                Split::Train => (*count, 0),
                Split::Test => ((*count / 5).max(1), 1),
            };
            Ok(Box::new(SyntheticSource::new(
                SYNTHETIC_SIDE,
                SYNTHETIC_CHANNELS,
                SYNTHETIC_CLASSES,
                Some(n),
                seed,
            )))
        }
    }
}

/// MNIST naming: `train-images-idx3-ubyte.gz` ↔ `t10k-images-idx3-ubyte.gz`.
fn test_counterpart(train: &Path) -> Result<PathBuf, DataError> {
    let name = train
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains("train") {
        return Err(DataError::format(
            train,
            "cannot find the test files: the name has no 'train' to replace by 't10k'; \
             hold out part of the training set instead (LabelledImages::holdout_split)",
        ));
    }
    let test = train.with_file_name(name.replacen("train", "t10k", 1));
    if !test.exists() {
        return Err(DataError::format(
            &test,
            "test file not found (expected beside the training file)",
        ));
    }
    Ok(test)
}
