//! QR codes of lanrelay's URLs, so a phone joins by pointing its camera: Unicode half
//! blocks for the terminal (two modules per character cell, so the code stays square)
//! and SVG for the pages, served at `GET /qr.svg?text=…`.

use axum::extract::Query;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use qrcode::render::svg;
use qrcode::{Color, QrCode};

/// The longest text `/qr.svg` encodes (URLs; anything longer is refused).
pub const MAX_TEXT: usize = 512;
/// Light modules around the code on the terminal. The standard asks for 4; 2 is
/// what terminal QR tools use, and phone cameras read it.
const TERMINAL_MARGIN: usize = 2;

/// Why a QR code was not made.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("the text is empty")]
    Empty,
    #[error("the text is longer than {MAX_TEXT} bytes")]
    TooLong,
    #[error("cannot encode the text: {0}")]
    Encode(#[from] qrcode::types::QrError),
}

fn encode(text: &str) -> Result<QrCode, QrError> {
    if text.is_empty() {
        return Err(QrError::Empty);
    }
    if text.len() > MAX_TEXT {
        return Err(QrError::TooLong);
    }
    Ok(QrCode::new(text.as_bytes())?)
}

/// The code as lines of half blocks. With `ansi`, the code is drawn black on white
/// whatever the terminal's colours; without, light modules are drawn with the
/// terminal's (usually light) text colour on its (usually dark) background.
pub fn terminal(text: &str, ansi: bool) -> Result<String, QrError> {
    let code = encode(text)?;
    let width = code.width();
    let colors = code.to_colors();
    let size = width + 2 * TERMINAL_MARGIN;
    let dark = |x: usize, y: usize| -> bool {
        let (Some(cx), Some(cy)) = (
            x.checked_sub(TERMINAL_MARGIN),
            y.checked_sub(TERMINAL_MARGIN),
        ) else {
            return false;
        };
        cx < width && cy < width && colors[cy * width + cx] == Color::Dark
    };
    let mut out = String::new();
    for row in (0..size).step_by(2) {
        if ansi {
            // Black text on a bright white background.
            out.push_str("\x1b[30;107m");
        }
        for x in 0..size {
            let (top, bottom) = (dark(x, row), row + 1 < size && dark(x, row + 1));
            // Which halves are drawn in the text colour.
            let (t, b) = if ansi {
                (top, bottom)
            } else {
                (!top, row + 1 < size && !bottom)
            };
            out.push(match (t, b) {
                (false, false) => ' ',
                (true, false) => '▀',
                (false, true) => '▄',
                (true, true) => '█',
            });
        }
        if ansi {
            out.push_str("\x1b[0m");
        }
        out.push('\n');
    }
    Ok(out)
}

/// The code as an SVG image (black on white, with the standard quiet zone).
pub fn svg(text: &str) -> Result<String, QrError> {
    let code = encode(text)?;
    Ok(code
        .render::<svg::Color>()
        .quiet_zone(true)
        .min_dimensions(256, 256)
        .build())
}

/// The query of `/qr.svg`.
#[derive(Debug, serde::Deserialize)]
pub struct QrQuery {
    text: String,
}

/// `GET /qr.svg?text=…`: the SVG QR code of `text`.
pub async fn svg_endpoint(Query(q): Query<QrQuery>) -> Response {
    match svg(&q.text) {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "private, max-age=3600"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads terminal output back as a picture (4 pixels per module) and decodes it
    /// with rqrr, as a phone camera would.
    fn decode_terminal(out: &str, ansi: bool) -> String {
        const SCALE: usize = 4;
        let rows: Vec<Vec<char>> = out
            .lines()
            .map(|l| {
                l.replace("\x1b[30;107m", "")
                    .replace("\x1b[0m", "")
                    .chars()
                    .collect()
            })
            .collect();
        let w = rows[0].len();
        // Each character is two modules, top and bottom; true = drawn in text colour.
        let drawn = |x: usize, y: usize| -> bool {
            let c = rows[y / 2][x];
            matches!((c, y % 2), ('█', _) | ('▀', 0) | ('▄', 1))
        };
        let h = rows.len() * 2;
        // ansi: text colour is black. Plain: text is light on a dark background.
        let img = rqrr::PreparedImage::prepare_from_greyscale(w * SCALE, h * SCALE, |x, y| {
            let is_dark = drawn(x / SCALE, y / SCALE) == ansi;
            if is_dark {
                0
            } else {
                255
            }
        });
        let mut img = img;
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1, "one code found");
        grids[0].decode().expect("decodes").1
    }

    #[test]
    fn terminal_codes_decode_back_to_the_url() {
        for url in [
            "https://192.168.1.20:8443/",
            "https://[2001:db8:1234:5678:9abc:def0:1234:5678]:8443/",
            "http://192.168.1.20:8080/trust",
        ] {
            for ansi in [true, false] {
                let out = terminal(url, ansi).unwrap();
                assert_eq!(decode_terminal(&out, ansi), url, "ansi={ansi}");
            }
        }
        let out = terminal("https://192.168.1.20:8443/", false).unwrap();
        // Square: 25 modules + margins, two rows per line.
        assert_eq!(out.lines().count(), (25usize + 4).div_ceil(2));
        assert!(out.lines().all(|l| l.chars().count() == 29));
    }

    #[test]
    fn svg_and_limits() {
        let s = svg("https://127.0.0.1:8443/?room=x").unwrap();
        assert!(s.contains("<svg") && s.contains("<path"));
        assert!(matches!(svg(""), Err(QrError::Empty)));
        assert!(matches!(
            svg(&"x".repeat(MAX_TEXT + 1)),
            Err(QrError::TooLong)
        ));
        assert!(svg(&"x".repeat(MAX_TEXT)).is_ok());
    }
}
