//! `models`, `enroll`, `roster`, `identify` and `calibrate`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::UsageError;
use crate::attendance::enroll::{self, EnrollReport};
use crate::attendance::roster::{self, ClassChange};
use crate::attendance::{Person, Role};
use crate::db;
use crate::logging::mask_id_number;
use crate::vision::calibrate::{self, PhotoSet};
use crate::vision::config::DEFAULT_MODELS_DIR;
use crate::vision::fetch::{self, Fetched, Verified};
use crate::vision::manifest::{Manifest, ModelSpec};
use crate::vision::{BgrImage, Gallery, Pipeline, Stages, VisionConfig};

#[derive(Debug, Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    pub command: ModelsCommand,
}

/// Which models a `models` command works on.
#[derive(Debug, Args)]
pub struct ModelSelection {
    /// Folder of the models. Default: the config's `vision.models_dir` with `--config`, else
    /// /usr/local/share/classproof/models.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Work on the models this config needs (its `vision.recognition_model` may be `sface`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Work on this model (repeatable), e.g. `--model sface`. Default: the default set.
    #[arg(long = "model")]
    pub models: Vec<String>,
    /// Work on every model of the manifest.
    #[arg(long, conflicts_with = "models")]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Install the models of models/manifest.toml, each checked by sha256: kept when already
    /// right, else copied from the mirror, else downloaded from the pinned upstream URLs.
    Fetch {
        #[command(flatten)]
        select: ModelSelection,
        /// A local folder holding byte-identical copies (checked by sha256).
        #[arg(long)]
        mirror: Option<PathBuf>,
    },
    /// Check the installed models against their sha256 (exit 1 when one is missing or wrong).
    Verify {
        #[command(flatten)]
        select: ModelSelection,
    },
    /// List the models of the manifest compiled into this binary.
    List,
}

#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The config file (data dir, `[vision]`).
    #[arg(long)]
    pub config: PathBuf,
    /// The person's id, e.g. the training system's trainee number.
    #[arg(long)]
    pub person: String,
    #[arg(long)]
    pub name: String,
    /// trainee or teacher.
    #[arg(long)]
    pub role: String,
    /// ID-card number (stored for the real-name system, shown masked: R15).
    #[arg(long)]
    pub id_number: Option<String>,
    /// A class (班次) the person belongs to, added to the stored ones; repeatable.
    #[arg(long = "class", value_name = "CLASS_ID")]
    pub classes: Vec<String>,
    /// Photos of the person, one face each.
    #[arg(required = true)]
    pub photos: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RosterArgs {
    #[command(subcommand)]
    pub command: RosterCommand,
}

#[derive(Debug, Subcommand)]
pub enum RosterCommand {
    /// Enroll everyone listed in a CSV file: columns person_id, name, role, id_number, an
    /// optional class_id (the person's classes, several separated by `;`), and one or more
    /// photo columns named photo, photos, photo1… (several paths in one cell separated by `;`);
    /// other columns are ignored. Relative photo paths are taken from the CSV's folder. A class
    /// that would exceed `[rules] max_trainees` (R10) refuses the whole file. Reports per row;
    /// exit 1 when a row had a problem.
    Import {
        #[arg(long)]
        config: PathBuf,
        file: PathBuf,
    },
    /// Delete a person with their face templates and classes; the deletion is a
    /// `roster_removed` record (R15).
    Remove {
        #[arg(long)]
        config: PathBuf,
        person: String,
    },
    /// Show who is enrolled, with template counts (ID numbers masked).
    List {
        #[arg(long)]
        config: PathBuf,
        /// One JSON object per person.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct IdentifyArgs {
    #[arg(long)]
    pub config: PathBuf,
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// One JSON object per detected face.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Config whose `[vision]` section picks the models (default: the built-in defaults).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A labelled photo set, CSV `path,identity` (all genuine and impostor pairs are formed).
    #[arg(long, conflicts_with = "pairs", required_unless_present = "pairs")]
    pub labels: Option<PathBuf>,
    /// With --labels: only rows whose `kind` column is one of these (repeatable).
    #[arg(long = "kind", requires = "labels")]
    pub kinds: Vec<String>,
    /// An explicit pair list, CSV `path_a,path_b,same` (same = 1 or 0).
    #[arg(long)]
    pub pairs: Option<PathBuf>,
    /// The false accept rate the proposed threshold must meet. Default 1e-3.
    #[arg(long, default_value_t = 1e-3)]
    pub target_far: f64,
    /// Also write every pair's score as CSV `path_a,path_b,same,similarity`.
    #[arg(long)]
    pub scores: Option<PathBuf>,
    /// One JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn models(args: ModelsArgs) -> anyhow::Result<ExitCode> {
    let manifest = Manifest::embedded()?;
    match args.command {
        ModelsCommand::Fetch { select, mirror } => {
            let (dir, specs) = select.resolve(&manifest)?;
            let mut failed = Vec::new();
            for spec in specs {
                match fetch::fetch(spec, &dir, mirror.as_deref()) {
                    Ok(how) => {
                        let how = match how {
                            Fetched::AlreadyInstalled => "already installed".to_string(),
                            Fetched::FromMirror(p) => format!("copied from {}", p.display()),
                            Fetched::Downloaded(url) => format!("downloaded from {url}"),
                        };
                        println!("{:<16} {:<36} {how}", spec.name, spec.file);
                    }
                    Err(e) => {
                        println!("{:<16} {:<36} FAILED", spec.name, spec.file);
                        failed.push(e.to_string());
                    }
                }
            }
            if !failed.is_empty() {
                anyhow::bail!(
                    "{} model(s) not installed in {}:\n{}",
                    failed.len(),
                    dir.display(),
                    failed.join("\n")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Verify { select } => {
            let explicit = select.all || !select.models.is_empty();
            let (dir, mut specs) = select.resolve(&manifest)?;
            if !explicit {
                // Also check optional models that happen to be installed (e.g. sface).
                for spec in &manifest.model {
                    if !specs.iter().any(|s| s.name == spec.name) && dir.join(&spec.file).exists() {
                        specs.push(spec);
                    }
                }
            }
            let mut bad = 0;
            for spec in specs {
                let status = match fetch::verify(spec, &dir)? {
                    Verified::Ok => "ok".to_string(),
                    Verified::Missing => {
                        bad += 1;
                        "MISSING".to_string()
                    }
                    Verified::Mismatch { sha256, bytes } => {
                        bad += 1;
                        format!("WRONG: {bytes} bytes, sha256 {sha256}, expected {}", spec.sha256)
                    }
                };
                println!("{:<16} {:<36} {status}", spec.name, spec.file);
            }
            if bad > 0 {
                eprintln!(
                    "classproof: {bad} model(s) missing or wrong in {}; run `classproof models fetch --dir {}`",
                    dir.display(),
                    dir.display()
                );
                return Ok(ExitCode::from(super::EXIT_PROBLEMS));
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::List => {
            for m in &manifest.model {
                println!(
                    "{:<16} {:<12} {:<8} {:>9} bytes  {}  {}",
                    m.name,
                    format!("{:?}", m.task).to_lowercase(),
                    if m.default { "default" } else { "optional" },
                    m.bytes,
                    m.licence,
                    m.file
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

impl ModelSelection {
    /// The models folder and the manifest entries selected.
    fn resolve<'m>(&self, manifest: &'m Manifest) -> anyhow::Result<(PathBuf, Vec<&'m ModelSpec>)> {
        let config = match &self.config {
            Some(path) => Some(super::load_config(path)?),
            None => None,
        };
        let dir = match (&self.dir, &config) {
            (Some(d), _) => d.clone(),
            (None, Some(c)) => c.vision.models_dir.clone(),
            (None, None) => PathBuf::from(DEFAULT_MODELS_DIR),
        };
        let specs = if self.all {
            manifest.model.iter().collect()
        } else if !self.models.is_empty() {
            self.models
                .iter()
                .map(|n| manifest.get(n).map_err(|e| UsageError(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?
        } else if let Some(c) = &config {
            c.vision
                .needed_models()
                .into_iter()
                .map(|n| manifest.get(n))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            manifest.defaults()
        };
        Ok((dir, specs))
    }
}

/// Config, database, pipeline and gallery for the commands that use the roster.
struct Room {
    conn: rusqlite::Connection,
    pipeline: Pipeline,
    gallery: Gallery,
}

fn open_room(config: &Path) -> anyhow::Result<Room> {
    let config = super::load_config(config)?;
    let conn = db::open(&config.device.data_dir)?;
    let pipeline = Pipeline::load(&config.vision).context("loading the face models")?;
    let (model, dim) = pipeline.recognition_model();
    let gallery = roster::load_gallery(&conn, model, dim)?;
    Ok(Room {
        conn,
        pipeline,
        gallery,
    })
}

/// Prints an enrollment's photo verdicts and warnings, indented.
fn print_enroll_report(r: &EnrollReport) {
    for p in &r.photos {
        match &p.result {
            Ok(a) => println!(
                "  ok        {} (face {} px, sharpness {:.0}{})",
                p.path.display(),
                a.face_px,
                a.sharpness,
                a.liveness
                    .map(|l| format!(", liveness {l:.3}"))
                    .unwrap_or_default()
            ),
            Err(why) => println!("  rejected  {}: {why}", p.path.display()),
        }
    }
    for w in &r.warnings {
        println!("  WARNING   {w}");
    }
}

pub fn enroll(args: EnrollArgs) -> anyhow::Result<ExitCode> {
    let role = Role::parse(&args.role).map_err(|e| UsageError(e.to_string()))?;
    roster::check_person_id(&args.person).map_err(|e| UsageError(e.to_string()))?;
    let mut classes = Vec::new();
    for c in &args.classes {
        classes.extend(roster::parse_classes(c).map_err(|e| UsageError(format!("--class: {e}")))?);
    }
    let cfg = super::load_config(&args.config)?;
    let mut room = open_room(&args.config)?;
    // R10: a class never holds more than `[rules] max_trainees` trainees.
    if let Err(big) = roster::check_class_sizes(
        &room.conn,
        &[(args.person.clone(), role, ClassChange::Add(&classes))],
        cfg.rules.profile.max_trainees,
    )? {
        return Err(UsageError(format!(
            "--class {}: the class would have {} trainees, more than [rules] max_trainees = {} (R10)",
            big.class_id, big.trainees, big.max
        ))
        .into());
    }
    let person = Person {
        person_id: args.person.clone(),
        name: args.name.clone(),
        role,
        id_number: args.id_number.filter(|s| !s.trim().is_empty()),
    };
    let r = enroll::enroll(
        &mut room.conn,
        &mut room.pipeline,
        &mut room.gallery,
        &person,
        ClassChange::Add(&classes),
        &args.photos,
        chrono::Utc::now(),
    )?;
    println!(
        "{} {} ({}{}{}): {} of {} photo(s) enrolled, {} template(s) in total",
        person.person_id,
        person.name,
        role.as_str(),
        person
            .id_number_masked()
            .map(|m| format!(", {m}"))
            .unwrap_or_default(),
        {
            let c = roster::classes_of(&room.conn, &person.person_id)?;
            if c.is_empty() {
                String::new()
            } else {
                format!(", class {}", c.join(";"))
            }
        },
        r.added,
        r.photos.len(),
        r.templates
    );
    print_enroll_report(&r);
    Ok(if r.rejected() > 0 || r.templates == 0 {
        ExitCode::from(super::EXIT_PROBLEMS)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn roster(args: RosterArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        RosterCommand::Import { config, file } => roster_import(&config, &file),
        RosterCommand::Remove { config, person } => {
            roster::check_person_id(&person).map_err(|e| UsageError(e.to_string()))?;
            let config = super::load_config(&config)?;
            let mut conn = db::open(&config.device.data_dir)?;
            match roster::remove_person(&mut conn, &person, chrono::Utc::now())? {
                Some(r) => {
                    println!(
                        "{} {} ({}{}) removed: {} template(s) deleted{}; record {}",
                        r.person.person_id,
                        r.person.name,
                        r.person.role.as_str(),
                        r.person
                            .id_number_masked()
                            .map(|m| format!(", {m}"))
                            .unwrap_or_default(),
                        r.templates,
                        if r.classes.is_empty() {
                            String::new()
                        } else {
                            format!(", out of class {}", r.classes.join(";"))
                        },
                        r.seq
                    );
                    Ok(ExitCode::SUCCESS)
                }
                None => Err(UsageError(format!("roster remove: no person {person:?} in the roster")).into()),
            }
        }
        RosterCommand::List { config, json } => {
            let config = super::load_config(&config)?;
            let conn = db::open(&config.device.data_dir)?;
            let entries = roster::list(&conn, &config.vision.recognition_model)?;
            let tz = config.device.timezone;
            for e in &entries {
                let masked = e.person.id_number_masked();
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "person_id": e.person.person_id,
                            "name": e.person.name,
                            "role": e.person.role.as_str(),
                            "id_number": masked,
                            "classes": e.classes,
                            "templates": e.templates,
                            "other_model_templates": e.other_templates,
                            "enrolled": crate::clock::rfc3339_us(e.enrolled_us, tz),
                        })
                    );
                } else {
                    println!(
                        "{:<16} {:<20} {:<8} {:<20} {:<12} {:>3} template(s){}",
                        e.person.person_id,
                        e.person.name,
                        e.person.role.as_str(),
                        masked.unwrap_or_else(|| "-".into()),
                        if e.classes.is_empty() {
                            "-".to_string()
                        } else {
                            e.classes.join(";")
                        },
                        e.templates,
                        if e.other_templates > 0 {
                            format!(" (+{} of another model: re-enroll)", e.other_templates)
                        } else {
                            String::new()
                        }
                    );
                }
            }
            if !json {
                let templates: usize = entries.iter().map(|e| e.templates).sum();
                println!("{} person(s), {templates} template(s)", entries.len());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn roster_import(config: &Path, file: &Path) -> anyhow::Result<ExitCode> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(file)
        .with_context(|| format!("{}: cannot read the roster", file.display()))?;
    let headers: Vec<String> = reader.headers()?.iter().map(|h| h.to_ascii_lowercase()).collect();
    let col = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            UsageError(format!(
                "{}: no column {name} (columns: {})",
                file.display(),
                headers.join(",")
            ))
        })
    };
    let (c_id, c_name, c_role, c_idn) = (col("person_id")?, col("name")?, col("role")?, col("id_number")?);
    // Photo columns: every column whose name mentions a photo (photo, photos, photo1, …);
    // other extra columns (class, phone…) are ignored.
    let photo_cols: Vec<usize> = (0..headers.len())
        .filter(|&i| headers[i].contains("photo"))
        .collect();
    if photo_cols.is_empty() {
        return Err(UsageError(format!(
            "{}: no photo column (a column named photo, photos, photo1…)",
            file.display()
        ))
        .into());
    }
    let base = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let c_class = headers.iter().position(|h| h == "class_id");
    let records: Vec<Result<csv::StringRecord, csv::Error>> = reader.records().collect();
    let cfg = super::load_config(config)?;
    let mut room = open_room(config)?;
    // Each row's classes (a `class_id` cell replaces the person's classes; without the column
    // they are kept), checked against R10 for the whole file before anything is enrolled.
    let row_classes: Vec<Result<Vec<String>, String>> = records
        .iter()
        .map(|record| match record {
            Ok(record) => roster::parse_classes(c_class.and_then(|c| record.get(c)).unwrap_or(""))
                .map_err(|e| format!("column class_id: {e}")),
            Err(_) => Ok(Vec::new()),
        })
        .collect();
    let mut changes = Vec::new();
    let mut change_rows = Vec::new();
    for (i, (record, classes)) in records.iter().zip(&row_classes).enumerate() {
        if let (Ok(record), Ok(classes)) = (record, classes)
            && let Ok(role) = Role::parse(record.get(c_role).unwrap_or(""))
        {
            let change = if c_class.is_some() {
                ClassChange::Set(classes)
            } else {
                ClassChange::Add(&[])
            };
            changes.push((record.get(c_id).unwrap_or("").to_string(), role, change));
            change_rows.push(i + 2);
        }
    }
    if let Err(big) = roster::check_class_sizes(&room.conn, &changes, cfg.rules.profile.max_trainees)? {
        return Err(UsageError(format!(
            "{}: row {}: class {} would have {} trainees, more than [rules] max_trainees = {} (R10); \
             nothing was imported",
            file.display(),
            change_rows[big.at],
            big.class_id,
            big.trainees,
            big.max
        ))
        .into());
    }
    drop(changes);
    let (mut rows, mut bad_rows, mut enrolled) = (0, 0, 0);
    for (i, record) in records.into_iter().enumerate() {
        let line = i + 2;
        rows += 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                println!("row {line}: unreadable: {e}");
                bad_rows += 1;
                continue;
            }
        };
        let field = |c: usize| record.get(c).unwrap_or("").to_string();
        let id_number = Some(field(c_idn)).filter(|s| !s.is_empty());
        // R15: only the masked number is ever printed.
        let masked = id_number
            .as_deref()
            .map(mask_id_number)
            .unwrap_or_else(|| "-".into());
        let head = format!("row {line}: {} {} ({masked})", field(c_id), field(c_name));
        let role = match Role::parse(&field(c_role)) {
            Ok(r) => r,
            Err(e) => {
                println!("{head}: {e}");
                bad_rows += 1;
                continue;
            }
        };
        let photos: Vec<PathBuf> = photo_cols
            .iter()
            .flat_map(|&c| {
                field(c)
                    .split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .map(|p| {
                let p = PathBuf::from(p);
                if p.is_absolute() { p } else { base.join(p) }
            })
            .collect();
        if photos.is_empty() {
            println!("{head}: no photo given");
            bad_rows += 1;
            continue;
        }
        let classes = match &row_classes[i] {
            Ok(c) => c.clone(),
            Err(e) => {
                println!("{head}: {e}");
                bad_rows += 1;
                continue;
            }
        };
        let class_change = if c_class.is_some() {
            ClassChange::Set(&classes)
        } else {
            ClassChange::Add(&[])
        };
        let person = Person {
            person_id: field(c_id),
            name: field(c_name),
            role,
            id_number,
        };
        match enroll::enroll(
            &mut room.conn,
            &mut room.pipeline,
            &mut room.gallery,
            &person,
            class_change,
            &photos,
            chrono::Utc::now(),
        ) {
            Ok(r) => {
                println!(
                    "{head}: {} of {} photo(s) enrolled, {} template(s){}",
                    r.added,
                    r.photos.len(),
                    r.templates,
                    if r.warnings.is_empty() {
                        ""
                    } else {
                        ", see warnings"
                    }
                );
                print_enroll_report(&r);
                if r.templates > 0 {
                    enrolled += 1;
                }
                if r.rejected() > 0 || r.templates == 0 {
                    bad_rows += 1;
                }
            }
            Err(e) => {
                println!("{head}: {e}");
                bad_rows += 1;
            }
        }
    }
    println!("{rows} row(s): {enrolled} person(s) enrolled, {bad_rows} row(s) with problems");
    Ok(if bad_rows > 0 {
        ExitCode::from(super::EXIT_PROBLEMS)
    } else {
        ExitCode::SUCCESS
    })
}

/// Rounds for JSON output (no 0.92999995 artefacts).
fn r4(v: f32) -> f64 {
    (v as f64 * 1e4).round() / 1e4
}

pub fn identify(args: IdentifyArgs) -> anyhow::Result<ExitCode> {
    let mut room = open_room(&args.config)?;
    let mut problems = 0;
    for path in &args.images {
        let img = match BgrImage::load(path) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("classproof: {e}");
                problems += 1;
                continue;
            }
        };
        let faces = room.pipeline.analyse(&img, Stages::ALL)?;
        if faces.is_empty() && !args.json {
            println!("{}: no face", path.display());
        }
        for f in &faces {
            let d = &f.detection;
            let live = f.liveness.map(|l| l.real()).unwrap_or(0.0);
            let id = f
                .embedding
                .as_ref()
                .and_then(|e| room.pipeline.identify(&room.gallery, e));
            let accepted = id.as_ref().filter(|i| i.accepted);
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "image": path.display().to_string(),
                        "box": [r1(d.x), r1(d.y), r1(d.w), r1(d.h)],
                        "det_score": r4(d.score),
                        "liveness": r4(live),
                        "person_id": accepted.map(|i| &i.person_id),
                        "name": accepted.map(|i| &i.name),
                        "similarity": id.as_ref().map(|i| r4(i.similarity)),
                        "margin": id.as_ref().and_then(|i| i.margin).map(r4),
                    })
                );
            } else {
                let who = match &id {
                    Some(i) if i.accepted => {
                        format!("{} ({}) similarity {:.3}", i.person_id, i.name, i.similarity)
                    }
                    Some(i) => format!("unknown (closest {} at {:.3})", i.person_id, i.similarity),
                    None => "unknown (nobody enrolled)".into(),
                };
                println!(
                    "{}: face at {:.0},{:.0} {:.0}x{:.0} score {:.3} liveness {:.3}{} -> {who}",
                    path.display(),
                    d.x,
                    d.y,
                    d.w,
                    d.h,
                    d.score,
                    live,
                    if f.liveness.is_some_and(|l| room.pipeline.is_live(&l)) {
                        ""
                    } else {
                        " SPOOF?"
                    },
                );
            }
        }
    }
    Ok(if problems > 0 {
        ExitCode::from(super::EXIT_PROBLEMS)
    } else {
        ExitCode::SUCCESS
    })
}

fn r1(v: f32) -> f64 {
    (v as f64 * 10.0).round() / 10.0
}

/// The `[vision]` section of `--config`, or the defaults.
fn vision_config(config: Option<&Path>) -> anyhow::Result<VisionConfig> {
    Ok(match config {
        Some(path) => super::load_config(path)?.vision,
        None => VisionConfig::default(),
    })
}

pub fn calibrate(args: CalibrateArgs) -> anyhow::Result<ExitCode> {
    if !(args.target_far > 0.0 && args.target_far < 1.0) {
        return Err(UsageError(format!(
            "--target-far {}: expected a rate between 0 and 1",
            args.target_far
        ))
        .into());
    }
    let set = match (&args.labels, &args.pairs) {
        (Some(labels), None) => PhotoSet::from_labels(labels, &args.kinds)?,
        (None, Some(pairs)) => PhotoSet::from_pairs(pairs)?,
        _ => return Err(UsageError("give exactly one of --labels and --pairs".into()).into()),
    };
    if set.pairs.is_empty() {
        return Err(UsageError("the photo set forms no pair".into()).into());
    }
    let config = vision_config(args.config.as_deref())?;
    let mut pipeline = Pipeline::load(&config).context("loading the face models")?;
    let (report, scores, photos) = calibrate::run(&mut pipeline, &set, args.target_far);
    for (i, r) in photos.iter().enumerate() {
        if let Some(why) = &r.problem {
            eprintln!("{}: {why}", set.photos[i]);
        }
    }
    if let Some(path) = &args.scores {
        let mut w = csv::Writer::from_path(path).with_context(|| format!("{}", path.display()))?;
        w.write_record(["path_a", "path_b", "same", "similarity"])?;
        for s in &scores {
            w.write_record([
                set.photos[s.a].as_str(),
                set.photos[s.b].as_str(),
                if s.same { "1" } else { "0" },
                &s.similarity.map(|v| format!("{v:.6}")).unwrap_or_default(),
            ])?;
        }
        w.flush()?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let opt = |v: Option<f64>, digits: usize| v.map_or("n/a".to_string(), |v| format!("{v:.digits$}"));
    let line = |name: &str, s: &calibrate::Stats| {
        println!(
            "{name:<9} {:>6} pairs  mean {}  std {}  min {}  max {}",
            s.count,
            opt(s.mean, 3),
            opt(s.std, 3),
            opt(s.min, 3),
            opt(s.max, 3)
        )
    };
    println!(
        "photos    {:>6} ({} without a face)",
        set.photos.len(),
        report.no_face
    );
    line("genuine", &report.genuine_pairs);
    line("impostor", &report.impostor_pairs);
    for (far, tar) in &report.tar_at_far {
        println!("TAR @ FAR {far}: {}", opt(*tar, 4));
    }
    println!("EER       {}", opt(report.eer, 4));
    println!("rank-1    {}", opt(report.rank1, 4));
    println!("ms/face   {}", opt(report.ms_per_face, 1));
    println!(
        "threshold {} (lowest similarity with FAR <= {}; configured match_threshold {:.3})",
        report
            .threshold
            .map_or("n/a (too few impostor pairs)".to_string(), |t| format!("{t:.4}")),
        args.target_far,
        config.match_threshold
    );
    Ok(ExitCode::SUCCESS)
}
