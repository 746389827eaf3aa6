//! Camera tamper (issue 11, item 6): a covered or blacked-out lens, a picture frozen while
//! packets still arrive, or the whole scene changing at once (the camera turned away), each
//! lasting longer than `tamper_after`. Pure: the analysis glue hands it the luma of each analysed
//! frame, shrunk to a [`Thumb`], with the frame's time; it answers with the moments an alarm
//! starts and ends. No clock, no I/O.
//!
//! Why these measures:
//! - *Covered*: a hand, tape or a cap gives a flat, dark picture: low contrast (the spread of
//!   the thumbnail's luma) or almost black. A dark classroom at night is flat too, but no class
//!   is held in the dark, so an alarm then is what an inspector wants anyway.
//! - *Frozen*: a live camera's decoded frames always differ a little (sensor noise, people,
//!   the camera's own clock overlay); a frozen encoder or a looped picture repeats the same
//!   pixels. Averaging would wipe the sensor noise out, so this compares single pixels sampled
//!   on a grid: almost no difference between consecutive frames for `tamper_after` is frozen.
//!   (An encoder skipping static blocks of an empty room between keyframes can look frozen on
//!   a camera without a clock overlay; most classroom cameras show one.)
//! - *Scene change*: compared with the reference scene (the last stable picture before), most
//!   of the thumbnail differs at once. Each thumbnail is taken relative to its own mean first,
//!   so switching the lights on or off does not count. People moving change a part of the
//!   picture, not most of it.
//!   A camera re-aimed on purpose stays in alarm until its new scene has been stable for
//!   `accept_after`; the scene is then the new reference and the alarm clears (the records say
//!   when it was turned and when the new view was accepted).

use std::time::Duration;

/// Thumbnail width and height: enough to tell a scene from another, small enough to compare
/// at any frame rate.
pub const THUMB_W: usize = 32;
pub const THUMB_H: usize = 18;

/// Pixels sampled on a grid, unaveraged, for the frozen-picture check.
pub const SAMPLES_W: usize = 64;
pub const SAMPLES_H: usize = 36;

/// A frame's luma shrunk to `THUMB_W × THUMB_H` (box filter), row-major, and single pixels
/// sampled on a `SAMPLES_W × SAMPLES_H` grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Thumb {
    pub luma: Vec<u8>,
    pub samples: Vec<u8>,
}

impl Thumb {
    /// Shrinks an 8-bit luma plane (`stride` bytes per row) by averaging boxes.
    pub fn from_luma(plane: &[u8], width: usize, height: usize, stride: usize) -> Option<Thumb> {
        if width < SAMPLES_W || height < SAMPLES_H || stride < width || plane.len() < stride * height {
            return None;
        }
        let mut samples = Vec::with_capacity(SAMPLES_W * SAMPLES_H);
        for sy in 0..SAMPLES_H {
            let y = (2 * sy + 1) * height / (2 * SAMPLES_H);
            for sx in 0..SAMPLES_W {
                samples.push(plane[y * stride + (2 * sx + 1) * width / (2 * SAMPLES_W)]);
            }
        }
        let mut luma = Vec::with_capacity(THUMB_W * THUMB_H);
        for ty in 0..THUMB_H {
            let (y0, y1) = (ty * height / THUMB_H, (ty + 1) * height / THUMB_H);
            for tx in 0..THUMB_W {
                let (x0, x1) = (tx * width / THUMB_W, (tx + 1) * width / THUMB_W);
                let mut sum = 0u64;
                for y in y0..y1 {
                    let row = &plane[y * stride..y * stride + width];
                    sum += row[x0..x1].iter().map(|&v| u64::from(v)).sum::<u64>();
                }
                let n = ((y1 - y0) * (x1 - x0)) as u64;
                luma.push((sum / n.max(1)) as u8);
            }
        }
        Some(Thumb { luma, samples })
    }

    fn mean(&self) -> f32 {
        self.luma.iter().map(|&v| f32::from(v)).sum::<f32>() / self.luma.len().max(1) as f32
    }

    /// Standard deviation of the luma: the picture's contrast.
    pub fn contrast(&self) -> f32 {
        let m = self.mean();
        let var = self.luma.iter().map(|&v| (f32::from(v) - m).powi(2)).sum::<f32>()
            / self.luma.len().max(1) as f32;
        var.sqrt()
    }

    /// Mean absolute difference of the two thumbnails, each relative to its own mean (so a
    /// change of brightness alone is not a difference).
    pub fn difference(&self, other: &Thumb) -> f32 {
        let (ma, mb) = (self.mean(), other.mean());
        let n = self.luma.len().min(other.luma.len()).max(1);
        self.luma
            .iter()
            .zip(&other.luma)
            .map(|(&a, &b)| ((f32::from(a) - ma) - (f32::from(b) - mb)).abs())
            .sum::<f32>()
            / n as f32
    }

    /// Mean absolute difference of the sampled pixels (for frozen pictures: any change counts).
    fn raw_difference(&self, other: &Thumb) -> f32 {
        let n = self.samples.len().min(other.samples.len()).max(1);
        self.samples
            .iter()
            .zip(&other.samples)
            .map(|(&a, &b)| (f32::from(a) - f32::from(b)).abs())
            .sum::<f32>()
            / n as f32
    }
}

/// What is wrong with the picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TamperKind {
    Covered,
    Frozen,
    SceneChanged,
}

impl TamperKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TamperKind::Covered => "covered",
            TamperKind::Frozen => "frozen",
            TamperKind::SceneChanged => "scene_changed",
        }
    }
}

/// The thresholds, on 8-bit luma: a live picture's sampled pixels differ between frames by a
/// grey level or more on average (sensor noise alone), a covered lens has a thumbnail contrast
/// under 6, a camera turned to another wall differs from its scene by over 30.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TamperConfig {
    /// `[attendance] tamper_after`: a condition must last this long to raise the alarm (and be
    /// gone this long to clear it).
    pub tamper_after: Duration,
    /// A re-aimed camera's new view is accepted as its scene after being stable this long.
    pub accept_after: Duration,
    pub covered_contrast: f32,
    pub covered_mean: f32,
    pub frozen_difference: f32,
    pub scene_difference: f32,
}

impl TamperConfig {
    pub fn new(tamper_after: Duration) -> TamperConfig {
        TamperConfig {
            tamper_after,
            accept_after: (tamper_after * 30).max(Duration::from_secs(1)),
            covered_contrast: 6.0,
            covered_mean: 12.0,
            frozen_difference: 0.25,
            scene_difference: 30.0,
        }
    }
}

/// An alarm starting or ending. `since_us`: when the condition began (it is raised
/// `tamper_after` later) or, for a clearing, when it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TamperEvent {
    Raised { kind: TamperKind, since_us: i64 },
    Cleared { kind: TamperKind, since_us: i64 },
}

/// One condition's debounce: seen continuously since `onset`, and whether raised.
#[derive(Debug, Clone, Copy, Default)]
struct Condition {
    onset_us: Option<i64>,
    absent_since_us: Option<i64>,
    raised: bool,
}

impl Condition {
    /// Advances with this frame's observation; returns the event, if any.
    fn step(&mut self, present: bool, t: i64, after_us: i64, kind: TamperKind) -> Option<TamperEvent> {
        if present {
            self.absent_since_us = None;
            let onset = *self.onset_us.get_or_insert(t);
            if !self.raised && t - onset >= after_us {
                self.raised = true;
                return Some(TamperEvent::Raised {
                    kind,
                    since_us: onset,
                });
            }
        } else {
            if !self.raised {
                self.onset_us = None;
                return None;
            }
            let gone = *self.absent_since_us.get_or_insert(t);
            if t - gone >= after_us {
                *self = Condition::default();
                return Some(TamperEvent::Cleared { kind, since_us: gone });
            }
        }
        None
    }
}

/// The tamper state of one camera.
#[derive(Debug, Clone)]
pub struct TamperDetector {
    config: TamperConfig,
    previous: Option<Thumb>,
    /// The scene the camera is meant to show: the first good picture, then the last one
    /// accepted.
    reference: Option<Thumb>,
    /// While the scene differs: the first picture of the new view and since when it is stable.
    candidate: Option<(Thumb, i64)>,
    covered: Condition,
    frozen: Condition,
    scene: Condition,
}

impl TamperDetector {
    pub fn new(config: TamperConfig) -> TamperDetector {
        TamperDetector {
            config,
            previous: None,
            reference: None,
            candidate: None,
            covered: Condition::default(),
            frozen: Condition::default(),
            scene: Condition::default(),
        }
    }

    /// The conditions raised now.
    pub fn raised(&self) -> Vec<TamperKind> {
        [
            (self.covered.raised, TamperKind::Covered),
            (self.frozen.raised, TamperKind::Frozen),
            (self.scene.raised, TamperKind::SceneChanged),
        ]
        .into_iter()
        .filter_map(|(r, k)| r.then_some(k))
        .collect()
    }

    /// One analysed frame at `t_us` (frames in time order).
    pub fn observe(&mut self, t_us: i64, thumb: Thumb) -> Vec<TamperEvent> {
        let c = self.config;
        let after = c.tamper_after.as_micros() as i64;
        let covered = thumb.contrast() < c.covered_contrast || thumb.mean() < c.covered_mean;
        let frozen = !covered
            && self
                .previous
                .as_ref()
                .is_some_and(|p| p.raw_difference(&thumb) < c.frozen_difference);
        // A covered picture says nothing about the scene.
        let changed = !covered
            && self
                .reference
                .as_ref()
                .is_some_and(|r| r.difference(&thumb) > c.scene_difference);

        let mut events = Vec::new();
        events.extend(self.covered.step(covered, t_us, after, TamperKind::Covered));
        events.extend(self.frozen.step(frozen, t_us, after, TamperKind::Frozen));
        events.extend(self.scene.step(changed, t_us, after, TamperKind::SceneChanged));

        if !covered {
            if self.reference.is_none() {
                self.reference = Some(thumb.clone());
            } else if changed {
                // Accept a new view once it has been stable long enough.
                let accept = c.accept_after.as_micros() as i64;
                match &self.candidate {
                    Some((first, since)) if first.difference(&thumb) <= c.scene_difference => {
                        if t_us - since >= accept {
                            self.reference = Some(thumb.clone());
                            self.candidate = None;
                            if self.scene.raised {
                                self.scene = Condition::default();
                                events.push(TamperEvent::Cleared {
                                    kind: TamperKind::SceneChanged,
                                    since_us: t_us,
                                });
                            } else {
                                self.scene = Condition::default();
                            }
                        }
                    }
                    _ => self.candidate = Some((thumb.clone(), t_us)),
                }
            } else {
                self.candidate = None;
            }
        }
        self.previous = Some(thumb);
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    /// A scene: a gradient with a pattern (`variant` moves the pattern), plus per-frame noise.
    fn scene(variant: u32, noise: u32, brightness: i32) -> Thumb {
        let mut luma = Vec::with_capacity(THUMB_W * THUMB_H);
        for y in 0..THUMB_H {
            for x in 0..THUMB_W {
                let base = if variant == 0 {
                    (x * 6 + y * 3) as i32
                } else {
                    // Another wall: the gradient the other way, with stripes.
                    (200 - (x * 5) as i32) + if (y / 3) % 2 == 0 { 40 } else { -40 }
                };
                let n = ((x as u32 * 7 + y as u32 * 13 + noise * 31) % 5) as i32 - 2;
                let n = if noise == 0 { 0 } else { n };
                luma.push((base + n + brightness).clamp(0, 255) as u8);
            }
        }
        // Samples: the same picture at twice the resolution, with its own noise.
        let mut samples = Vec::with_capacity(SAMPLES_W * SAMPLES_H);
        for y in 0..SAMPLES_H {
            for x in 0..SAMPLES_W {
                let base = i32::from(luma[(y / 2) * THUMB_W + x / 2]);
                let n = ((x as u32 * 11 + y as u32 * 17 + noise * 29) % 7) as i32 - 3;
                let n = if noise == 0 { 0 } else { n };
                samples.push((base + n).clamp(0, 255) as u8);
            }
        }
        Thumb { luma, samples }
    }

    fn black() -> Thumb {
        Thumb {
            luma: vec![3; THUMB_W * THUMB_H],
            samples: vec![3; SAMPLES_W * SAMPLES_H],
        }
    }

    fn run(d: &mut TamperDetector, frames: impl IntoIterator<Item = (i64, Thumb)>) -> Vec<TamperEvent> {
        frames.into_iter().flat_map(|(t, th)| d.observe(t, th)).collect()
    }

    fn detector() -> TamperDetector {
        TamperDetector::new(TamperConfig::new(Duration::from_secs(10)))
    }

    /// A tamper of `kind` raised at `from_us` and cleared at `to_us`.
    fn raised_then_cleared(kind: TamperKind, from_us: i64, to_us: i64) -> Vec<TamperEvent> {
        vec![
            TamperEvent::Raised {
                kind,
                since_us: from_us,
            },
            TamperEvent::Cleared {
                kind,
                since_us: to_us,
            },
        ]
    }

    #[test]
    fn a_live_picture_raises_nothing() {
        let mut d = detector();
        let ev = run(&mut d, (0..120).map(|i| (i * S, scene(0, i as u32 + 1, 0))));
        assert!(ev.is_empty(), "{ev:?}");
    }

    #[test]
    fn lights_switched_on_are_not_a_scene_change() {
        let mut d = detector();
        let frames = (0..60).map(|i| (i * S, scene(0, i as u32 + 1, if i < 20 { 0 } else { 45 })));
        assert!(run(&mut d, frames).is_empty());
    }

    #[test]
    fn a_covered_lens_for_longer_than_tamper_after_is_raised_then_cleared() {
        let mut d = detector();
        let mut frames: Vec<(i64, Thumb)> = (0..10).map(|i| (i * S, scene(0, i as u32 + 1, 0))).collect();
        frames.extend((10..25).map(|i| (i * S, black())));
        frames.extend((25..45).map(|i| (i * S, scene(0, i as u32 + 1, 0))));
        let ev = run(&mut d, frames);
        assert_eq!(ev, raised_then_cleared(TamperKind::Covered, 10 * S, 25 * S));
    }

    #[test]
    fn a_short_cover_is_not_an_alarm() {
        let mut d = detector();
        let mut frames: Vec<(i64, Thumb)> = (0..10).map(|i| (i * S, scene(0, i as u32 + 1, 0))).collect();
        frames.extend((10..19).map(|i| (i * S, black())));
        frames.extend((19..40).map(|i| (i * S, scene(0, i as u32 + 1, 0))));
        assert!(run(&mut d, frames).is_empty());
    }

    #[test]
    fn a_frozen_picture_is_raised_and_cleared_when_it_moves_again() {
        let mut d = detector();
        let mut frames: Vec<(i64, Thumb)> = (0..5).map(|i| (i * S, scene(0, i as u32 + 1, 0))).collect();
        frames.extend((5..20).map(|i| (i * S, scene(0, 99, 0))));
        frames.extend((20..35).map(|i| (i * S, scene(0, i as u32 + 1, 0))));
        let ev = run(&mut d, frames);
        // Frozen from the second identical frame (6 s) on.
        assert_eq!(ev, raised_then_cleared(TamperKind::Frozen, 6 * S, 20 * S));
    }

    #[test]
    fn a_camera_turned_away_is_raised_cleared_when_turned_back() {
        let mut d = detector();
        let mut frames: Vec<(i64, Thumb)> = (0..10).map(|i| (i * S, scene(0, i as u32 + 1, 0))).collect();
        frames.extend((10..30).map(|i| (i * S, scene(1, i as u32 + 1, 0))));
        frames.extend((30..50).map(|i| (i * S, scene(0, i as u32 + 1, 0))));
        let ev = run(&mut d, frames);
        assert_eq!(ev, raised_then_cleared(TamperKind::SceneChanged, 10 * S, 30 * S));
    }

    #[test]
    fn a_re_aimed_camera_is_accepted_after_its_new_view_is_stable() {
        let mut d = TamperDetector::new(TamperConfig {
            accept_after: Duration::from_secs(60),
            ..TamperConfig::new(Duration::from_secs(10))
        });
        let mut frames: Vec<(i64, Thumb)> = (0..10).map(|i| (i * S, scene(0, i as u32 + 1, 0))).collect();
        frames.extend((10..100).map(|i| (i * S, scene(1, i as u32 + 1, 0))));
        let ev = run(&mut d, frames);
        assert_eq!(ev, raised_then_cleared(TamperKind::SceneChanged, 10 * S, 70 * S));
        assert!(d.raised().is_empty());
    }

    #[test]
    fn thumbnails_average_boxes_of_a_luma_plane() {
        // 64×36 with stride 70: left half 0, right half 200.
        let (w, h, stride) = (64, 36, 70);
        let mut plane = vec![0u8; stride * h];
        for y in 0..h {
            for x in w / 2..w {
                plane[y * stride + x] = 200;
            }
        }
        let t = Thumb::from_luma(&plane, w, h, stride).expect("big enough");
        assert_eq!(t.luma.len(), THUMB_W * THUMB_H);
        assert_eq!(t.luma[0], 0);
        assert_eq!(t.luma[THUMB_W - 1], 200);
        assert_eq!(t.samples.len(), SAMPLES_W * SAMPLES_H);
        assert_eq!((t.samples[0], t.samples[SAMPLES_W - 1]), (0, 200));
        assert!(Thumb::from_luma(&plane, 8, 8, 8).is_none());
    }
}
