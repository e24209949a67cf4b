//! Font registration for plotters' `ab_glyph` text backend.
//!
//! Both the bitmap and the SVG backends need a font to lay out text, and plotters' ab_glyph
//! backend knows only fonts registered at run time. We look for a system TrueType font (or
//! `$EDGESSL_FONT`) rather than embedding one; without any, charts are drawn without text.

use std::sync::OnceLock;

/// Family name the charts ask for.
pub const FAMILY: &str = "sans-serif";

/// Places a sans-serif TTF usually lives on Linux, macOS and Windows.
const CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Registers a font once per process; `true` if text can be drawn.
pub fn text_available() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let env = std::env::var("EDGESSL_FONT").ok();
        for path in env
            .iter()
            .map(String::as_str)
            .chain(CANDIDATES.iter().copied())
        {
            let Ok(bytes) = std::fs::read(path) else {
                continue;
            };
            // plotters keeps a `'static` reference; one leaked font per process is intended.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font(FAMILY, plotters::style::FontStyle::Normal, bytes)
                .is_ok()
            {
                return true;
            }
        }
        eprintln!(
            "warning: no TrueType font found (set EDGESSL_FONT=/path/to/font.ttf); charts will \
             have no text"
        );
        false
    })
}
