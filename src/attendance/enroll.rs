//! Enrollment: photos of one person → checked faces → templates in the roster, with a reason for
//! every rejected photo and warnings when the person looks like someone else already enrolled
//! (a duplicate entry, or two identities swapped) or when their photos do not agree.
//!
//! The enrollment is recorded in the evidence log in the same transaction as the templates
//! (R16); the log holds ids and photo hashes, never names, ID numbers or templates (R15).

use std::fmt;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use thiserror::Error;

use super::roster::{self, ClassChange, NewTemplate, Person, RosterError};
use crate::db;
use crate::evidence::log;
use crate::evidence::record::{Enrollment, Record};
use crate::vision::embed::cosine;
use crate::vision::fetch::sha256_file;
use crate::vision::{BgrImage, Gallery, Pipeline, Stages, VisionError};

#[derive(Debug, Error)]
pub enum EnrollError {
    #[error(transparent)]
    Roster(#[from] RosterError),
    #[error("enrollment: database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("enrollment: evidence log: {0}")]
    Log(#[from] log::LogError),
    #[error(transparent)]
    Vision(#[from] VisionError),
}

/// Why a photo was not enrolled.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    Unreadable(String),
    NoFace,
    SeveralFaces(usize),
    TooSmall { px: u32, min: u32 },
    TooBlurry { sharpness: f32, min: f32 },
    Spoof { real: f32, threshold: f32 },
    AlreadyEnrolled,
}

impl Rejection {
    /// A stable one-word code (for JSON and tests).
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Unreadable(_) => "unreadable",
            Rejection::NoFace => "no_face",
            Rejection::SeveralFaces(_) => "several_faces",
            Rejection::TooSmall { .. } => "too_small",
            Rejection::TooBlurry { .. } => "too_blurry",
            Rejection::Spoof { .. } => "spoof",
            Rejection::AlreadyEnrolled => "already_enrolled",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Unreadable(why) => write!(f, "unreadable: {why}"),
            Rejection::NoFace => write!(f, "no face found"),
            Rejection::SeveralFaces(n) => write!(f, "{n} faces: the photo must show one person"),
            Rejection::TooSmall { px, min } => write!(f, "face too small: {px} px, need {min}"),
            Rejection::TooBlurry { sharpness, min } => {
                write!(f, "too blurry: sharpness {sharpness:.1}, need {min:.1}")
            }
            Rejection::Spoof { real, threshold } => write!(
                f,
                "looks like a photo of a photo or a screen (liveness {real:.3} < {threshold:.3})"
            ),
            Rejection::AlreadyEnrolled => write!(f, "this photo is already enrolled for this person"),
        }
    }
}

/// A photo that passed the checks.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub embedding: Vec<f32>,
    pub face_px: u32,
    pub det_score: f32,
    pub sharpness: f32,
    pub liveness: Option<f32>,
}

/// The verdict on one photo.
#[derive(Debug, Clone)]
pub struct PhotoOutcome {
    pub path: PathBuf,
    pub sha256: Option<String>,
    pub result: Result<Accepted, Rejection>,
}

/// Something a technician should look at, although the photos were enrolled.
#[derive(Debug, Clone, PartialEq)]
pub enum Warning {
    /// A new photo is as similar to another enrolled person as a match would be.
    LooksLike {
        photo: PathBuf,
        person_id: String,
        name: String,
        similarity: f32,
    },
    /// Two of the new photos do not look like the same person.
    PhotosDisagree { a: PathBuf, b: PathBuf, similarity: f32 },
    /// A new photo does not look like the person's templates enrolled before.
    UnlikeEnrolled { photo: PathBuf, similarity: f32 },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::LooksLike {
                photo,
                person_id,
                name,
                similarity,
            } => write!(
                f,
                "{} looks like {person_id} ({name}), already enrolled (similarity {similarity:.3}): \
                 a duplicate entry or swapped identities?",
                photo.display()
            ),
            Warning::PhotosDisagree { a, b, similarity } => write!(
                f,
                "{} and {} may not show the same person (similarity {similarity:.3})",
                a.display(),
                b.display()
            ),
            Warning::UnlikeEnrolled { photo, similarity } => write!(
                f,
                "{} does not look like this person's enrolled photos (best similarity \
                 {similarity:.3}): swapped identity?",
                photo.display()
            ),
        }
    }
}

/// The result of enrolling one person.
#[derive(Debug, Clone)]
pub struct EnrollReport {
    pub person_id: String,
    pub photos: Vec<PhotoOutcome>,
    pub warnings: Vec<Warning>,
    /// Templates stored by this enrollment.
    pub added: usize,
    /// Templates of this person (current model) after it.
    pub templates: usize,
}

impl EnrollReport {
    pub fn rejected(&self) -> usize {
        self.photos.iter().filter(|p| p.result.is_err()).count()
    }
}

/// Checks one photo against the enrollment rules of the pipeline's config.
pub fn check_photo(pipeline: &mut Pipeline, path: &Path) -> Result<Accepted, Rejection> {
    let img = BgrImage::load(path).map_err(|e| Rejection::Unreadable(e.to_string()))?;
    check_image(pipeline, &img)
}

/// Checks a decoded photo.
pub fn check_image(pipeline: &mut Pipeline, img: &BgrImage) -> Result<Accepted, Rejection> {
    let cfg = pipeline.config().clone();
    let dets: Vec<_> = pipeline
        .detect(img)
        .map_err(|e| Rejection::Unreadable(e.to_string()))?
        .into_iter()
        .filter(|d| d.score >= cfg.enroll_min_score)
        .collect();
    let Some(largest) = dets.iter().map(|d| d.size()).reduce(f32::max) else {
        return Err(Rejection::NoFace);
    };
    // Faces much smaller than the main one (people far behind) do not make the photo ambiguous.
    let prominent: Vec<_> = dets.into_iter().filter(|d| d.size() >= largest / 2.0).collect();
    if prominent.len() > 1 {
        return Err(Rejection::SeveralFaces(prominent.len()));
    }
    let face_px = largest.round() as u32;
    if face_px < cfg.enroll_min_face {
        return Err(Rejection::TooSmall {
            px: face_px,
            min: cfg.enroll_min_face,
        });
    }
    let stages = Stages {
        liveness: cfg.enroll_liveness,
        embedding: true,
    };
    let face = pipeline
        .analyse_detections(img, prominent, stages)
        .map_err(|e| Rejection::Unreadable(e.to_string()))?
        .pop()
        .ok_or(Rejection::NoFace)?;
    if face.sharpness < cfg.enroll_min_sharpness {
        return Err(Rejection::TooBlurry {
            sharpness: face.sharpness,
            min: cfg.enroll_min_sharpness,
        });
    }
    if let Some(l) = &face.liveness
        && !pipeline.is_live(l)
    {
        return Err(Rejection::Spoof {
            real: l.real(),
            threshold: cfg.liveness_threshold,
        });
    }
    Ok(Accepted {
        embedding: face.embedding.ok_or(Rejection::NoFace)?,
        face_px,
        det_score: face.detection.score,
        sharpness: face.sharpness,
        liveness: face.liveness.map(|l| l.real()),
    })
}

/// Enrolls `person` from `photos`: checks each photo, stores the accepted ones as templates and
/// records the enrollment in the evidence log, all in one transaction. `gallery` (the current
/// templates of the pipeline's model) is used for the duplicate check and gets the new
/// templates. A person with no accepted photo and no earlier template is not stored. `classes`
/// is applied to the person in the same transaction (the caller checks R10 first:
/// `roster::check_class_sizes`).
pub fn enroll(
    conn: &mut Connection,
    pipeline: &mut Pipeline,
    gallery: &mut Gallery,
    person: &Person,
    classes: ClassChange,
    photos: &[PathBuf],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<EnrollReport, EnrollError> {
    roster::check_person_id(&person.person_id)?;
    let (model, _) = pipeline.recognition_model();
    let model = model.to_string();
    let cfg = pipeline.config().clone();
    let mut outcomes = Vec::with_capacity(photos.len());
    for path in photos {
        let sha256 = sha256_file(path).ok().map(|(s, _)| s);
        let mut result = check_photo(pipeline, path);
        if let (Ok(_), Some(sha)) = (&result, &sha256)
            && roster::has_photo(conn, &person.person_id, &model, sha)?
        {
            result = Err(Rejection::AlreadyEnrolled);
        }
        if let Err(why) = &result {
            tracing::info!(person = %person.person_id, photo = %path.display(), reason = why.code(), "enrollment photo rejected");
        }
        outcomes.push(PhotoOutcome {
            path: path.clone(),
            sha256,
            result,
        });
    }

    // Warnings: other persons who look the same, photos that disagree, unlike earlier templates.
    let accepted: Vec<(&PhotoOutcome, &Accepted)> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok().map(|a| (o, a)))
        .collect();
    let mut warnings = Vec::new();
    for (o, a) in &accepted {
        if let Some(m) = gallery.search_excluding(&a.embedding, Some(&person.person_id))
            && m.similarity >= cfg.duplicate_threshold
        {
            let p = &gallery.persons()[m.person];
            warnings.push(Warning::LooksLike {
                photo: o.path.clone(),
                person_id: p.person_id.clone(),
                name: p.name.clone(),
                similarity: m.similarity,
            });
        }
    }
    for (i, (oa, a)) in accepted.iter().enumerate() {
        for (ob, b) in &accepted[i + 1..] {
            let s = cosine(&a.embedding, &b.embedding);
            if s < cfg.match_threshold {
                warnings.push(Warning::PhotosDisagree {
                    a: oa.path.clone(),
                    b: ob.path.clone(),
                    similarity: s,
                });
            }
        }
    }
    let mut own = Gallery::new(&model, gallery.dim());
    let earlier = roster::load_gallery_of(conn, &model, gallery.dim(), &person.person_id)?;
    if !earlier.is_empty() {
        own.add(&person.person_id, &person.name, person.role.as_str(), &earlier);
        for (o, a) in &accepted {
            if let Some(m) = own.search(&a.embedding)
                && m.similarity < cfg.match_threshold
            {
                warnings.push(Warning::UnlikeEnrolled {
                    photo: o.path.clone(),
                    similarity: m.similarity,
                });
            }
        }
    }
    for w in &warnings {
        tracing::warn!(person = %person.person_id, "enrollment: {w}");
    }

    let now_us = now.timestamp_micros();
    let mut added = Vec::new();
    let tx = db::write_tx(conn)?;
    if !accepted.is_empty() || !earlier.is_empty() {
        roster::upsert_person(&tx, person, now_us)?;
        roster::change_classes(&tx, &person.person_id, classes)?;
    }
    for (o, a) in &accepted {
        let Some(sha) = &o.sha256 else { continue };
        let t = NewTemplate {
            model: &model,
            vector: &a.embedding,
            photo_sha256: sha,
            face_px: a.face_px,
            det_score: a.det_score,
            sharpness: a.sharpness,
            liveness: a.liveness,
        };
        if roster::add_template(&tx, &person.person_id, &t, now_us)? {
            added.push((sha.clone(), a.embedding.clone()));
        }
    }
    if !added.is_empty() {
        let record = Record::Enrollment(Enrollment {
            person_id: person.person_id.clone(),
            role: person.role,
            model: model.clone(),
            templates_added: added.len() as u64,
            photo_sha256: added.iter().map(|(s, _)| s.clone()).collect(),
            rejected: outcomes.iter().filter(|o| o.result.is_err()).count() as u64,
            warnings: warnings.len() as u64,
        });
        log::append(&tx, now, &record)?;
    }
    tx.commit()?;
    let new: Vec<Vec<f32>> = added.into_iter().map(|(_, e)| e).collect();
    gallery.add(&person.person_id, &person.name, person.role.as_str(), &new);
    Ok(EnrollReport {
        person_id: person.person_id.clone(),
        templates: earlier.len() + new.len(),
        added: new.len(),
        photos: outcomes,
        warnings,
    })
}
