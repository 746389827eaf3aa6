//! BGR images: the pipeline's input type, and the few OpenCV operations it needs (decode,
//! bilinear resize, affine warp, crop).
//!
//! A frame is tightly packed BGR24, row-major, the layout FFmpeg's `bgr24` and OpenCV's `CV_8UC3`
//! both use, so a decoded camera frame is handed over without conversion.

use std::path::Path;

use opencv::core::{BORDER_CONSTANT, Mat, Rect, Scalar, Size, Vec3b};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};

use super::VisionError;
use super::manifest::ChannelOrder;

/// A BGR24 image, tightly packed (`data.len() == width * height * 3`).
#[derive(Clone, PartialEq, Eq)]
pub struct BgrImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for BgrImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BgrImage({}x{})", self.width, self.height)
    }
}

fn cv(context: &str) -> impl FnOnce(opencv::Error) -> VisionError + '_ {
    move |e| VisionError::Image(format!("{context}: {e}"))
}

impl BgrImage {
    /// Wraps packed BGR24 bytes (e.g. a decoded camera frame).
    pub fn from_raw(width: usize, height: usize, data: Vec<u8>) -> Result<BgrImage, VisionError> {
        if width == 0 || height == 0 || data.len() != width * height * 3 {
            return Err(VisionError::Image(format!(
                "{} bytes is not a {width}x{height} BGR24 image",
                data.len()
            )));
        }
        Ok(BgrImage { width, height, data })
    }

    /// A black image.
    pub fn zeros(width: usize, height: usize) -> BgrImage {
        BgrImage {
            width,
            height,
            data: vec![0; width * height * 3],
        }
    }

    /// Decodes an image file (JPEG, PNG, …). EXIF orientation is applied, as OpenCV does by
    /// default.
    pub fn load(path: &Path) -> Result<BgrImage, VisionError> {
        let bad = |why: String| VisionError::ImageFile {
            path: path.to_path_buf(),
            why,
        };
        if !path.is_file() {
            return Err(bad("no such file".into()));
        }
        let mat =
            imgcodecs::imread(path.as_os_str(), imgcodecs::IMREAD_COLOR).map_err(|e| bad(e.to_string()))?;
        if mat.empty() {
            return Err(bad("not an image OpenCV can decode".into()));
        }
        from_mat(&mat).map_err(|e| bad(e.to_string()))
    }

    /// Decodes an image held in memory.
    pub fn decode(bytes: &[u8]) -> Result<BgrImage, VisionError> {
        let buf = Mat::from_slice(bytes).map_err(cv("decode"))?;
        let mat = imgcodecs::imdecode(&buf, imgcodecs::IMREAD_COLOR).map_err(cv("decode"))?;
        if mat.empty() {
            return Err(VisionError::Image("not an image OpenCV can decode".into()));
        }
        from_mat(&mat)
    }

    /// Encodes as JPEG (for snapshots and test fixtures).
    pub fn encode_jpeg(&self, quality: i32) -> Result<Vec<u8>, VisionError> {
        let mat = self.mat()?;
        let mut out = opencv::core::Vector::<u8>::new();
        let params = opencv::core::Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, quality]);
        imgcodecs::imencode(".jpg", &mat, &mut out, &params).map_err(cv("encode"))?;
        Ok(out.to_vec())
    }

    /// A borrowed OpenCV view of the pixels.
    fn mat(&self) -> Result<opencv::boxed_ref::BoxedRef<'_, Mat>, VisionError> {
        Mat::new_rows_cols_with_bytes::<Vec3b>(self.height as i32, self.width as i32, &self.data)
            .map_err(cv("wrap"))
    }

    /// Bilinear resize (OpenCV `INTER_LINEAR`).
    pub fn resize(&self, width: usize, height: usize) -> Result<BgrImage, VisionError> {
        let src = self.mat()?;
        let mut dst = Mat::default();
        imgproc::resize(
            &src,
            &mut dst,
            Size::new(width as i32, height as i32),
            0.0,
            0.0,
            imgproc::INTER_LINEAR,
        )
        .map_err(cv("resize"))?;
        from_mat(&dst)
    }

    /// The pixels of `[x0, x1) × [y0, y1)` (clamped to the image).
    pub fn crop(&self, x0: usize, y0: usize, x1: usize, y1: usize) -> BgrImage {
        let (x1, y1) = (x1.min(self.width), y1.min(self.height));
        let (x0, y0) = (x0.min(x1), y0.min(y1));
        let (w, h) = (x1 - x0, y1 - y0);
        let mut data = Vec::with_capacity(w * h * 3);
        for y in y0..y1 {
            let row = (y * self.width + x0) * 3;
            data.extend_from_slice(&self.data[row..row + w * 3]);
        }
        BgrImage {
            width: w,
            height: h,
            data,
        }
    }

    /// Crops `rect` and resizes it bilinearly to `width × height` in one step.
    pub fn crop_resize(
        &self,
        rect: (usize, usize, usize, usize),
        width: usize,
        height: usize,
    ) -> Result<BgrImage, VisionError> {
        let (x0, y0, x1, y1) = rect;
        let src = self.mat()?;
        let roi_rect = Rect::new(
            x0 as i32,
            y0 as i32,
            (x1 - x0).max(1) as i32,
            (y1 - y0).max(1) as i32,
        );
        let roi = Mat::roi(&src, roi_rect).map_err(cv("crop"))?;
        let mut dst = Mat::default();
        imgproc::resize(
            &roi,
            &mut dst,
            Size::new(width as i32, height as i32),
            0.0,
            0.0,
            imgproc::INTER_LINEAR,
        )
        .map_err(cv("crop resize"))?;
        from_mat(&dst)
    }

    /// Affine warp with matrix `m` (2×3, destination = m · source), bilinear, border 0.
    pub fn warp_affine(&self, m: &[f64; 6], width: usize, height: usize) -> Result<BgrImage, VisionError> {
        let src = self.mat()?;
        let mm = Mat::new_rows_cols_with_data::<f64>(2, 3, m).map_err(cv("warp"))?;
        let mut dst = Mat::default();
        imgproc::warp_affine(
            &src,
            &mut dst,
            &mm,
            Size::new(width as i32, height as i32),
            imgproc::INTER_LINEAR,
            BORDER_CONSTANT,
            Scalar::default(),
        )
        .map_err(cv("warp"))?;
        from_mat(&dst)
    }

    /// Writes the pixels as planar CHW floats, `(x - mean) * scale`, in the model's channel
    /// order, into `out` (length `3 * width * height`).
    pub fn write_chw(&self, order: ChannelOrder, mean: f32, scale: f32, out: &mut [f32]) {
        let plane = self.width * self.height;
        debug_assert_eq!(out.len(), 3 * plane);
        // Plane p of the tensor takes BGR channel src[p].
        let src = match order {
            ChannelOrder::Bgr => [0, 1, 2],
            ChannelOrder::Rgb => [2, 1, 0],
        };
        let (p0, rest) = out.split_at_mut(plane);
        let (p1, p2) = rest.split_at_mut(plane);
        for (i, px) in self.data.chunks_exact(3).enumerate() {
            p0[i] = (px[src[0]] as f32 - mean) * scale;
            p1[i] = (px[src[1]] as f32 - mean) * scale;
            p2[i] = (px[src[2]] as f32 - mean) * scale;
        }
    }

    /// Mean of each channel (B, G, R).
    pub fn channel_means(&self) -> [f64; 3] {
        let mut sum = [0u64; 3];
        for px in self.data.chunks_exact(3) {
            for c in 0..3 {
                sum[c] += px[c] as u64;
            }
        }
        let n = (self.width * self.height).max(1) as f64;
        sum.map(|s| s as f64 / n)
    }

    /// Luma (BT.601, as OpenCV's BGR2GRAY) of every pixel.
    pub fn grey(&self) -> Vec<f32> {
        self.data
            .chunks_exact(3)
            .map(|p| 0.114 * p[0] as f32 + 0.587 * p[1] as f32 + 0.299 * p[2] as f32)
            .collect()
    }
}

fn from_mat(mat: &Mat) -> Result<BgrImage, VisionError> {
    if mat.typ() != opencv::core::CV_8UC3 {
        return Err(VisionError::Image(format!(
            "expected an 8-bit 3-channel image, got OpenCV type {}",
            mat.typ()
        )));
    }
    let owned;
    let mat = if mat.is_continuous() {
        mat
    } else {
        owned = mat.try_clone().map_err(cv("copy"))?;
        &owned
    };
    let data = mat.data_bytes().map_err(cv("read"))?.to_vec();
    BgrImage::from_raw(mat.cols() as usize, mat.rows() as usize, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_and_resize_keep_the_layout() {
        let mut img = BgrImage::zeros(4, 2);
        let at = (4 + 2) * 3; // row 1, column 2
        img.data[at..at + 3].copy_from_slice(&[1, 2, 3]);
        let c = img.crop(2, 1, 4, 2);
        assert_eq!((c.width, c.height), (2, 1));
        assert_eq!(&c.data[..3], &[1, 2, 3]);
        let r = img.resize(8, 4).unwrap();
        assert_eq!((r.width, r.height, r.data.len()), (8, 4, 96));
        let jpeg = BgrImage::zeros(16, 16).encode_jpeg(90).unwrap();
        let back = BgrImage::decode(&jpeg).unwrap();
        assert_eq!((back.width, back.height), (16, 16));
        assert!(BgrImage::from_raw(2, 2, vec![0; 11]).is_err());
    }
}
