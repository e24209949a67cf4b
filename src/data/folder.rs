//! Image folders: every PNG, JPEG and PGM/PPM/PNM file below a root, recursively, in sorted
//! path order. Images inside first-level sub-folders get the sub-folder's index (in sorted
//! name order) as their label, as torchvision's `ImageFolder` does; images directly in the
//! root are unlabelled. Unreadable images are skipped with a warning and counted, or are fatal
//! with `strict`.

use super::{DataError, Frame, FrameSource};
use image::DynamicImage;
use std::path::{Path, PathBuf};

/// File extensions (lower case) treated as images.
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "pgm", "ppm", "pnm", "pbm"];

/// Guards against symlink cycles.
const MAX_DEPTH: usize = 32;

/// Frames decoded one by one from an image folder.
#[derive(Debug)]
pub struct FolderSource {
    root: PathBuf,
    files: Vec<(PathBuf, Option<u32>)>,
    class_names: Vec<String>,
    next: usize,
    strict: bool,
    skipped: usize,
}

impl FolderSource {
    /// Lists the images below `root`. With `strict`, an undecodable image is an error
    /// instead of being skipped.
    pub fn open(root: &Path, strict: bool) -> Result<Self, DataError> {
        let meta = std::fs::metadata(root).map_err(|e| DataError::io(root, e))?;
        if !meta.is_dir() {
            return Err(DataError::format(
                root,
                "not a directory (--frames takes an image folder)",
            ));
        }
        let mut paths = Vec::new();
        collect_images(root, 0, &mut paths)?;
        paths.sort();
        if paths.is_empty() {
            return Err(DataError::format(
                root,
                format!(
                    "no images found (looked for .{} files)",
                    IMAGE_EXTENSIONS.join(", .")
                ),
            ));
        }
        let class_of = |p: &Path| -> Option<String> {
            let rel = p.strip_prefix(root).ok()?;
            let mut parts = rel.components();
            let first = parts.next()?;
            parts.next()?; // a file directly in the root has no class folder
            Some(first.as_os_str().to_string_lossy().into_owned())
        };
        let mut class_names: Vec<String> = paths.iter().filter_map(|p| class_of(p)).collect();
        class_names.dedup(); // paths are sorted, so equal first components are adjacent
        let files = paths
            .into_iter()
            .map(|p| {
                let label = class_of(&p)
                    .and_then(|c| class_names.iter().position(|n| *n == c))
                    .map(|i| i as u32);
                (p, label)
            })
            .collect();
        Ok(FolderSource {
            root: root.to_path_buf(),
            files,
            class_names,
            next: 0,
            strict,
            skipped: 0,
        })
    }

    /// Sub-folder names, index = label.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Number of image files listed (frames delivered may be fewer if some are corrupt).
    pub fn file_count(&self) -> usize {
        self.files.len()
    }
}

fn collect_images(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    if depth > MAX_DEPTH {
        return Err(DataError::format(
            dir,
            format!("folders nested deeper than {MAX_DEPTH} (symlink loop?)"),
        ));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue; // hidden files and folders (.DS_Store, .git, …)
        }
        if path.is_dir() {
            collect_images(&path, depth + 1, out)?;
        } else if path
            .extension()
            .map(|e| IMAGE_EXTENSIONS.contains(&e.to_string_lossy().to_ascii_lowercase().as_str()))
            .unwrap_or(false)
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Decodes an image file (format sniffed from its bytes) into a gray or RGB frame.
pub fn decode_image(path: &Path, label: Option<u32>) -> Result<Frame, DataError> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| DataError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?;
    let img = reader
        .decode()
        .map_err(|e| DataError::format(path, format!("cannot decode image: {e}")))?;
    Ok(frame_from_image(img, label))
}

/// Gray images (with or without alpha, any depth) become 1 channel, everything else RGB.
pub fn frame_from_image(img: DynamicImage, label: Option<u32>) -> Frame {
    let (width, height) = (img.width() as usize, img.height() as usize);
    if img.color().has_color() {
        Frame {
            width,
            height,
            channels: 3,
            pixels: img.into_rgb8().into_raw(),
            label,
        }
    } else {
        Frame {
            width,
            height,
            channels: 1,
            pixels: img.into_luma8().into_raw(),
            label,
        }
    }
}

impl FrameSource for FolderSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, DataError> {
        while let Some((path, label)) = self.files.get(self.next) {
            self.next += 1;
            match decode_image(path, *label) {
                Ok(frame) => return Ok(Some(frame)),
                Err(err) if self.strict => return Err(err),
                Err(err) => {
                    self.skipped += 1;
                    tracing::warn!("skipping unreadable image ({} so far): {err}", self.skipped);
                }
            }
        }
        Ok(None)
    }

    fn len_hint(&self) -> Option<usize> {
        Some(self.files.len())
    }

    fn describe(&self) -> String {
        let labels = if self.class_names.is_empty() {
            "unlabelled".to_string()
        } else {
            format!("{} classes from sub-folders", self.class_names.len())
        };
        format!(
            "image folder {} ({} files, {labels})",
            self.root.display(),
            self.files.len()
        )
    }

    fn skipped(&self) -> usize {
        self.skipped
    }

    fn classes(&self) -> Option<usize> {
        (!self.class_names.is_empty()).then_some(self.class_names.len())
    }
}
