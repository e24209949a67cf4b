//! Module weights ↔ named tensors with PyTorch-style names, for exports other tools can load.
//!
//! burn's field paths are translated to torchvision's ResNet names: `layers.0.1.conv1.weight`
//! → `layer1.1.conv1.weight`, `downsample.conv` → `downsample.0`, `downsample.bn` →
//! `downsample.1`, BatchNorm `gamma`/`beta` → `weight`/`bias`. Linear weights are transposed
//! to PyTorch's `[out, in]` (burn stores `[in, out]`).

use crate::export::NamedTensor;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use std::collections::HashMap;

/// Turn a burn field path (segments) into a PyTorch-style name, and say whether the tensor is
/// a Linear weight (stored transposed in burn).
fn pytorch_name(path: &[String]) -> (String, bool) {
    let mut out: Vec<String> = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let seg = path[i].as_str();
        if seg == "layers" && i + 1 < path.len() {
            let stage: usize = path[i + 1].parse().unwrap_or(0);
            out.push(format!("layer{}", stage + 1));
            i += 2;
            continue;
        }
        let renamed = match (seg, out.last().map(String::as_str)) {
            ("conv", Some("downsample")) => "0",
            ("bn", Some("downsample")) => "1",
            ("gamma", _) => "weight",
            ("beta", _) => "bias",
            (other, _) => other,
        };
        out.push(renamed.to_string());
        i += 1;
    }
    let is_linear_weight = path.last().is_some_and(|s| s == "weight")
        && path.len() >= 2
        && path[path.len() - 2].starts_with("fc");
    (out.join("."), is_linear_weight)
}

struct Collect {
    path: Vec<String>,
    prefix: String,
    tensors: Vec<NamedTensor>,
}

impl<B: Backend> ModuleVisitor<B> for Collect {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let (name, transpose) = pytorch_name(&self.path);
        let mut value = param.val();
        if transpose && D == 2 {
            value = value.swap_dims(0, 1);
        }
        let shape = value.dims().to_vec();
        let data = value
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .unwrap_or_default();
        let name = if self.prefix.is_empty() {
            name
        } else {
            format!("{}.{name}", self.prefix)
        };
        if let Ok(t) = NamedTensor::f32(name, shape, data) {
            self.tensors.push(t);
        }
    }
}

/// Every float tensor of `module` (parameters and BatchNorm statistics) under PyTorch-style
/// names, each prefixed by `prefix.` when `prefix` is not empty.
///
/// BatchNorm running statistics are read as they are: call it on a module returned by
/// `valid()` (or after `into_record`) so that they are synchronised.
pub fn named_tensors<B: Backend, M: Module<B>>(module: &M, prefix: &str) -> Vec<NamedTensor> {
    let mut collect = Collect {
        path: Vec::new(),
        prefix: prefix.to_string(),
        tensors: Vec::new(),
    };
    module.visit(&mut collect);
    collect.tensors
}

struct Assign<'a> {
    path: Vec<String>,
    prefix: String,
    by_name: HashMap<&'a str, &'a NamedTensor>,
    used: usize,
    errors: Vec<String>,
}

impl<B: Backend> ModuleMapper<B> for Assign<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (name, transpose) = pytorch_name(&self.path);
        let name = if self.prefix.is_empty() {
            name
        } else {
            format!("{}.{name}", self.prefix)
        };
        let Some(found) = self.by_name.get(name.as_str()) else {
            self.errors.push(format!("missing tensor `{name}`"));
            return param;
        };
        let mut want = param.val().dims().to_vec();
        if transpose && D == 2 {
            want.swap(0, 1);
        }
        if found.shape != want {
            self.errors.push(format!(
                "`{name}` has shape {:?}, the model needs {want:?}",
                found.shape
            ));
            return param;
        }
        self.used += 1;
        let values = found.data.to_f32_vec();
        param.map(|old| {
            let device = old.device();
            let grad = old.is_require_grad();
            let mut t = Tensor::<B, D>::from_data(TensorData::new(values, want.clone()), &device);
            if transpose && D == 2 {
                t = t.swap_dims(0, 1);
            }
            t.set_require_grad(grad)
        })
    }
}

/// Load the named tensors (as written by [`named_tensors`]) into `module`. Every tensor the
/// module needs must be present with the right shape; the error lists what is wrong.
pub fn load_named<B: Backend, M: Module<B>>(
    module: M,
    tensors: &[NamedTensor],
    prefix: &str,
) -> Result<M, String> {
    let by_name = tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut assign = Assign {
        path: Vec::new(),
        prefix: prefix.to_string(),
        by_name,
        used: 0,
        errors: Vec::new(),
    };
    let module = module.map(&mut assign);
    if assign.errors.is_empty() {
        Ok(module)
    } else {
        Err(assign.errors.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::pytorch_name;

    fn p(s: &str) -> Vec<String> {
        s.split('.').map(String::from).collect()
    }

    #[test]
    fn burn_paths_become_torchvision_names() {
        assert_eq!(
            pytorch_name(&p("layers.0.1.conv1.weight")).0,
            "layer1.1.conv1.weight"
        );
        assert_eq!(
            pytorch_name(&p("layers.2.0.downsample.conv.weight")).0,
            "layer3.0.downsample.0.weight"
        );
        assert_eq!(
            pytorch_name(&p("layers.2.0.downsample.bn.gamma")).0,
            "layer3.0.downsample.1.weight"
        );
        assert_eq!(pytorch_name(&p("bn1.beta")).0, "bn1.bias");
        assert_eq!(pytorch_name(&p("bn1.running_var")).0, "bn1.running_var");
        assert!(pytorch_name(&p("fc1.weight")).1);
        assert!(!pytorch_name(&p("conv1.weight")).1);
    }
}
