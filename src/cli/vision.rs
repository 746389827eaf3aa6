//! `models`, `enroll`, `roster`, `identify` and `calibrate`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::UsageError;
use crate::vision::calibrate::{self, PhotoSet};
use crate::vision::config::DEFAULT_MODELS_DIR;
use crate::vision::fetch::{self, Fetched, Verified};
use crate::vision::manifest::{Manifest, ModelSpec};
use crate::vision::{Pipeline, VisionConfig};

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
    #[arg(long)]
    pub config: PathBuf,
    #[arg(long)]
    pub person: String,
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub role: String,
    pub photos: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RosterArgs {
    #[command(subcommand)]
    pub command: RosterCommand,
}

#[derive(Debug, Subcommand)]
pub enum RosterCommand {
    /// Enroll everyone listed in a CSV file.
    Import {
        #[arg(long)]
        config: PathBuf,
        file: PathBuf,
    },
    /// Show who is enrolled.
    List {
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct IdentifyArgs {
    #[arg(long)]
    pub config: PathBuf,
    pub images: Vec<PathBuf>,
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

pub fn enroll(_args: EnrollArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("enroll")
}

pub fn roster(_args: RosterArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("roster")
}

pub fn identify(_args: IdentifyArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("identify")
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
