//! Integration tests for the vision room: `models fetch|verify`, and the face pipeline, enrollment,
//! identify and calibrate on the real models and the real photos of ../shared (models/testdata
//! and faces-dev).

use std::path::{Path, PathBuf};

use crate::support::{classproof, shared};

/// The installed models: `CLASSPROOF_MODELS_DIR` when set (deploy/setup.sh test sets it), else
/// the default install folder. Panics with what to run when they are missing.
fn models_dir() -> PathBuf {
    let dir = std::env::var_os("CLASSPROOF_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(::classproof::vision::config::DEFAULT_MODELS_DIR));
    let out = classproof(&["models", "verify", "--dir", &dir.display().to_string()]);
    assert!(
        out.status.success(),
        "the face models are not installed in {} (set CLASSPROOF_MODELS_DIR or run \
         `cargo run --release -- models fetch --dir {} --mirror ../shared/models`):\n{}{}",
        dir.display(),
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn models_fetch_from_mirror_then_verify_then_detect_damage() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("models");
    let mirror = shared().join("models");
    let out = classproof(&["models", "fetch", "--dir", &s(&target), "--mirror", &s(&mirror)]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(text(&out).matches("copied from").count(), 4, "{}", text(&out));
    // Idempotent: the second run copies nothing.
    let out = classproof(&["models", "fetch", "--dir", &s(&target), "--mirror", &s(&mirror)]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        text(&out).matches("already installed").count(),
        4,
        "{}",
        text(&out)
    );
    let out = classproof(&["models", "verify", "--dir", &s(&target)]);
    assert!(out.status.success(), "{}", text(&out));

    // A damaged file is found by verify (exit 1) and replaced by fetch.
    let fr = target.join("fr_feature.onnx");
    let mut bytes = std::fs::read(&fr).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(&fr, bytes).unwrap();
    let out = classproof(&["models", "verify", "--dir", &s(&target)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("fr_feature.onnx"), "{}", text(&out));
    assert!(text(&out).contains("WRONG"), "{}", text(&out));
    let out = classproof(&["models", "fetch", "--dir", &s(&target), "--mirror", &s(&mirror)]);
    assert!(out.status.success(), "{}", text(&out));
    let out = classproof(&["models", "verify", "--dir", &s(&target)]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn models_fetch_names_the_model_the_places_tried_and_the_sha256_when_it_fails() {
    let dir = tempfile::tempdir().unwrap();
    let empty_mirror = tempfile::tempdir().unwrap();
    // SFace is not in the mirror, and upstream is not reachable from the test machine (or the
    // download is checked and works: then the test still proves the mirror was tried first).
    let out = classproof(&[
        "models",
        "fetch",
        "--dir",
        &s(dir.path()),
        "--mirror",
        &s(empty_mirror.path()),
        "--model",
        "sface",
    ]);
    if out.status.success() {
        return;
    }
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("model sface (face_recognition_sface_2021dec.onnx)"),
        "{t}"
    );
    assert!(
        t.contains("0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79"),
        "{t}"
    );
    assert!(
        t.contains(&s(&empty_mirror
            .path()
            .join("face_recognition_sface_2021dec.onnx"))),
        "{t}"
    );
    assert!(
        t.contains("https://github.com/opencv/opencv_zoo/raw/966be4cb"),
        "{t}"
    );
}

#[test]
fn installed_models_are_verified() {
    models_dir();
}

// ---------------------------------------------------------------------------------------------
// The pipeline as a library, against ../shared/models/reference-parity.json.

use ::classproof::vision::{BgrImage, Face, Pipeline, Stages, VisionConfig};

fn config() -> VisionConfig {
    VisionConfig {
        models_dir: models_dir(),
        ..VisionConfig::default()
    }
}

fn pipeline() -> Pipeline {
    Pipeline::load(&config()).expect("load the face pipeline")
}

/// The largest face of an image (the reference's "face choice").
fn largest(faces: Vec<Face>) -> Option<Face> {
    faces
        .into_iter()
        .max_by(|a, b| (a.detection.w * a.detection.h).total_cmp(&(b.detection.w * b.detection.h)))
}

fn close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}");
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        worst <= tol,
        "{what}: off by {worst} > {tol}\n got  {got:?}\n want {want:?}"
    );
}

fn nums(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Measured on 2026-11-22: boxes and landmarks within 0.005 px (the reference is rounded to
/// 0.01), scores within 5e-5, aligned-crop means within 0.012, embedding prefixes within 7e-4,
/// liveness probabilities within 5e-5, pairwise cosines within 0.0025. The tolerances below
/// leave a little room for other CPUs.
#[test]
fn every_stage_matches_the_reference_pipeline() {
    let parity: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(shared().join("models/reference-parity.json")).unwrap(),
    )
    .unwrap();
    let mut p = pipeline();
    let mut embeddings = std::collections::BTreeMap::new();
    for (rel, want) in parity["images"].as_object().unwrap() {
        let img = BgrImage::load(&shared().join(rel)).unwrap();
        assert_eq!(
            [img.width as f64, img.height as f64],
            nums(&want["size_wh"])[..],
            "{rel}"
        );
        let faces = p.analyse(&img, Stages::ALL).unwrap();
        let want_faces = want["faces"].as_array().unwrap();
        assert_eq!(faces.len(), want_faces.len(), "{rel}: face count");
        let f = largest(faces).unwrap();
        let w = &want_faces[0];
        let d = &f.detection;
        close(
            &format!("{rel} box"),
            &[d.x, d.y, d.w, d.h].map(f64::from),
            &nums(&w["box_xywh"]),
            0.05,
        );
        close(
            &format!("{rel} score"),
            &[d.score as f64],
            &[w["score"].as_f64().unwrap()],
            0.001,
        );
        let lms: Vec<f64> = d.landmarks.iter().flatten().map(|v| *v as f64).collect();
        close(&format!("{rel} landmarks"), &lms, &nums(&w["landmarks"]), 0.05);
        close(
            &format!("{rel} aligned crop mean"),
            &f.aligned.channel_means(),
            &nums(&want["aligned_crop_mean_bgr"]),
            0.05,
        );
        let e = f.embedding.clone().unwrap();
        let e8: Vec<f64> = e[..8].iter().map(|v| *v as f64).collect();
        close(
            &format!("{rel} embedding"),
            &e8,
            &nums(&want["embedding_first8"]["bgr"]),
            0.002,
        );
        let l = f.liveness.unwrap();
        let lp = &want["liveness_probs"];
        close(
            &format!("{rel} MiniFASNetV2"),
            &l.per_model[0].map(f64::from),
            &nums(&lp["MiniFASNetV2_2.7"]),
            0.001,
        );
        close(
            &format!("{rel} MiniFASNetV1SE"),
            &l.per_model[1].map(f64::from),
            &nums(&lp["MiniFASNetV1SE_4.0"]),
            0.001,
        );
        close(
            &format!("{rel} fused"),
            &l.probs.map(f64::from),
            &nums(&lp["fused"]),
            0.001,
        );
        let name = rel.rsplit('/').next().unwrap().to_string();
        embeddings.insert(name, e);
    }
    for (pair, want) in parity["cosine"]["bgr"].as_object().unwrap() {
        let (a, b) = pair.split_once('~').unwrap();
        let got = ::classproof::vision::embed::cosine(&embeddings[a], &embeddings[b]) as f64;
        close(
            &format!("cosine {pair}"),
            &[got],
            &[want.as_f64().unwrap()],
            0.005,
        );
    }
}

/// Not a check: prints, for every photo of faces-dev, what the enrollment checks see (faces,
/// size, sharpness, liveness). Used to choose the defaults in docs/calibration.md:
/// `cargo test --release --test it vision::survey -- --ignored --nocapture`.
#[test]
#[ignore]
fn survey_faces_dev() {
    let mut p = pipeline();
    let root = shared().join("faces-dev");
    let mut rows: Vec<String> = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let Ok(img) = BgrImage::load(&path) else { continue };
            let faces = p.analyse(&img, Stages::ALL).unwrap();
            let rel = path.strip_prefix(&root).unwrap().display().to_string();
            match largest(faces.clone()) {
                None => rows.push(format!("{rel:<60} faces 0")),
                Some(f) => rows.push(format!(
                    "{rel:<60} faces {} size {:>4.0} score {:.3} sharp {:>7.1} live {:.3}",
                    faces.len(),
                    f.detection.size(),
                    f.detection.score,
                    f.sharpness,
                    f.liveness.unwrap().real()
                )),
            }
        }
    }
    rows.sort();
    for r in rows {
        println!("{r}");
    }
}

// ---------------------------------------------------------------------------------------------
// Golden embedding and batching.

/// The aligned crop: obama.jpg (models/testdata) sampled by integer index arithmetic,
/// `crop[y][x] = image[41 + 10y/3][311 + 10x/3]` (integer division), 112×112 BGR. No warp is
/// involved: OpenCV 4.6 and 5.0 round bilinear warps differently (up to 3 grey levels), which
/// would move an embedding by ~1e-3. The bytes hash to `GOLDEN_CROP_SHA256` in both languages.
const GOLDEN_ORIGIN: (usize, usize) = (311, 41);
const GOLDEN_CROP_SHA256: &str = "6502b8390f758e320e2cf7d11f658f7157440eec68032b0f631890ab3e14316b";

/// fr_feature's L2-normalised embedding of that crop in BGR, (x − 127)/128, made by an
/// independent implementation: `benches/vision/golden.py` (Python, numpy, onnxruntime 1.31.1
/// from PyPI), run on 2026-11-22 and printed to 6 decimals.
const GOLDEN_EMBEDDING: [f32; 512] = [
    0.054473, -0.008141, 0.004144, -0.058580, -0.015379, 0.031165, -0.069645, 0.001302, 0.051093, 0.007851,
    0.050737, 0.034693, 0.056526, -0.092427, -0.024510, -0.074891, -0.031217, -0.014540, 0.088113, 0.055384,
    -0.021636, -0.003637, -0.006820, -0.053986, 0.051268, 0.073185, 0.025788, 0.080409, 0.089467, -0.038092,
    -0.001749, -0.034014, 0.029164, 0.044086, 0.077760, 0.044924, 0.033773, 0.004112, 0.000955, -0.024953,
    -0.105545, -0.046087, 0.064414, 0.062683, -0.003795, 0.056190, 0.033408, -0.010556, -0.008856, -0.053755,
    0.078799, -0.000693, 0.005621, -0.013923, 0.039971, 0.020277, -0.008686, -0.047195, -0.018566, 0.071945,
    -0.013575, 0.003309, -0.055291, 0.014958, 0.005996, -0.033034, 0.001013, -0.017590, 0.007806, -0.001132,
    0.016113, 0.063550, -0.004850, -0.040274, -0.016676, 0.018747, -0.018042, 0.038905, 0.004950, -0.030873,
    -0.009021, 0.073333, 0.019395, 0.021488, -0.013631, 0.039377, 0.005622, 0.009069, 0.065075, -0.001626,
    -0.084918, 0.029744, -0.033596, 0.007455, 0.010154, -0.053127, 0.050731, 0.052562, 0.070295, 0.017896,
    0.053036, -0.004106, 0.025790, -0.081870, 0.018211, -0.080338, -0.002202, -0.009503, 0.046390, 0.002830,
    0.013972, -0.018637, -0.027355, 0.036248, 0.023120, 0.037098, 0.089364, 0.006088, -0.032760, 0.057467,
    -0.002176, 0.046005, -0.063635, 0.012926, -0.026180, -0.044751, -0.089791, -0.001860, -0.064501,
    -0.091309, 0.049200, -0.030891, 0.001740, -0.099604, 0.030927, 0.036439, 0.040096, 0.099678, -0.042271,
    -0.027458, 0.071139, 0.053276, 0.037446, 0.003491, 0.093270, 0.044455, 0.007295, 0.014628, -0.024666,
    -0.041617, -0.118301, -0.004421, -0.048661, 0.043400, 0.053314, 0.008244, 0.032260, -0.022349, -0.106497,
    0.059267, -0.013065, 0.050629, 0.017117, -0.009664, 0.013421, 0.018404, -0.022592, -0.007802, -0.025145,
    -0.052801, -0.076566, -0.032000, -0.016673, -0.088440, 0.009597, 0.092879, -0.001365, -0.065339,
    0.037257, 0.038153, -0.048167, 0.068076, -0.080298, 0.013499, -0.013365, -0.009608, 0.052154, 0.017925,
    -0.008674, -0.017259, 0.014984, -0.013541, 0.048053, -0.051798, -0.010200, 0.012296, 0.006927, -0.002155,
    0.003380, 0.076474, 0.100995, 0.020211, 0.020580, -0.060072, -0.001361, -0.002058, 0.023151, 0.047552,
    -0.046574, 0.030707, 0.032332, -0.038017, 0.039304, -0.059054, 0.047476, -0.000121, 0.048398, 0.035777,
    0.072254, 0.002459, 0.021036, -0.041103, 0.001446, -0.001730, 0.065163, 0.046780, 0.007536, -0.019090,
    -0.035319, 0.014217, -0.073317, 0.056688, 0.045522, -0.020844, -0.084035, 0.066152, 0.030443, -0.058039,
    0.047053, -0.044413, 0.068988, 0.004045, 0.017037, -0.002976, 0.014734, -0.018840, 0.034346, -0.029070,
    -0.033743, 0.033754, -0.004980, 0.065801, 0.027530, -0.067770, -0.010556, 0.070797, -0.013776, -0.043346,
    0.010378, -0.028945, -0.019810, 0.007463, -0.068484, 0.048965, -0.022407, -0.016356, -0.067812, 0.067791,
    -0.009201, 0.017349, -0.023504, 0.006991, 0.029688, -0.004045, 0.036607, -0.072183, 0.054261, 0.047220,
    -0.045389, 0.045119, -0.023590, -0.028639, -0.010441, -0.004850, -0.036879, -0.044174, 0.040030,
    0.008425, -0.005830, 0.019846, -0.004992, -0.062037, 0.051393, -0.015664, 0.004928, -0.032071, -0.009514,
    0.016810, 0.029498, -0.028408, 0.008875, 0.006090, 0.031961, 0.056336, -0.039130, 0.037301, 0.155177,
    -0.033269, -0.020228, 0.041822, -0.048808, -0.029038, -0.064677, 0.021635, -0.004904, -0.008047,
    -0.068502, 0.094535, 0.026653, 0.018972, -0.045072, 0.040690, 0.014328, 0.027085, -0.053138, 0.021522,
    0.064844, -0.014665, 0.025073, 0.007171, -0.018674, -0.013042, -0.002010, 0.091010, -0.056324, 0.000135,
    0.029478, 0.022472, 0.065410, 0.023645, 0.016734, -0.036157, 0.016456, 0.016698, -0.040980, -0.013089,
    0.012235, -0.044687, 0.082279, 0.001190, -0.012993, 0.031087, 0.067532, 0.030818, -0.017768, -0.035508,
    0.013613, 0.055572, 0.033321, -0.087399, 0.013285, 0.032904, 0.073324, -0.054327, 0.018722, 0.012054,
    -0.005425, -0.017769, 0.021353, -0.049726, 0.014323, -0.022940, -0.041585, 0.023750, -0.003204,
    -0.048570, 0.008823, 0.050126, 0.000113, -0.026807, -0.008931, -0.081452, 0.011058, -0.064890, 0.066626,
    -0.073688, 0.096625, -0.044739, 0.017425, 0.017665, 0.042002, 0.058958, 0.007056, -0.013452, 0.009628,
    0.029555, 0.019801, 0.005364, -0.064410, 0.078410, 0.009768, -0.053463, -0.036219, -0.050556, 0.009179,
    -0.054234, -0.058936, 0.041896, -0.036497, -0.107854, -0.046713, 0.034839, -0.004013, 0.034769, 0.033941,
    -0.025265, 0.029815, -0.001223, 0.004624, 0.057789, -0.021844, -0.004144, -0.035776, 0.062610, 0.020104,
    0.048601, 0.021741, -0.028047, -0.057739, -0.060279, 0.064975, 0.048442, -0.030482, 0.125352, -0.016832,
    -0.026726, -0.037977, -0.064694, -0.015065, -0.052850, 0.068690, -0.046825, 0.039834, -0.002912,
    -0.056606, -0.005365, -0.018154, -0.034746, -0.000330, 0.058360, 0.029647, 0.061886, 0.011673, 0.043323,
    -0.003857, 0.060313, -0.010019, -0.006071, 0.018570, 0.038157, -0.015842, 0.063113, 0.086373, -0.043844,
    0.019889, 0.030509, -0.093380, -0.041691, -0.026346, 0.016801, -0.027673, 0.027160, -0.039650, -0.011233,
    0.039120, -0.060709, -0.056004, 0.027921, 0.018313, -0.029305, 0.026508, 0.035052, 0.044851, 0.106279,
    -0.000969, -0.013085, 0.040562, -0.035484, -0.025806, 0.019378, 0.119222, -0.043166, -0.017530, 0.049706,
    0.059550, 0.055935, 0.058287, 0.009359, -0.039556, -0.004861, -0.024695, 0.081629, 0.070929, -0.048413,
    -0.014645, 0.113792, 0.016973, 0.005993, -0.036606, 0.028704, 0.016302, 0.007897,
];

#[test]
fn golden_embedding_of_a_fixed_aligned_crop_is_reproduced() {
    let img = BgrImage::load(&shared().join("models/testdata/obama.jpg")).unwrap();
    let (x0, y0) = GOLDEN_ORIGIN;
    let mut data = Vec::with_capacity(112 * 112 * 3);
    for y in 0..112 {
        for x in 0..112 {
            let at = ((y0 + 10 * y / 3) * img.width + x0 + 10 * x / 3) * 3;
            data.extend_from_slice(&img.data[at..at + 3]);
        }
    }
    let crop = BgrImage::from_raw(112, 112, data).unwrap();
    let sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, &crop.data).as_ref());
    assert_eq!(sha, GOLDEN_CROP_SHA256, "the crop (or JPEG decoding) changed");
    let mut p = pipeline();
    let e = p.embed_aligned(&[&crop]).unwrap().remove(0);
    let worst = e
        .iter()
        .zip(GOLDEN_EMBEDDING)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= 1e-4, "embedding differs from the golden one by {worst}");
    // The golden was computed with the default MXCSR; classproof flushes subnormals on the
    // thread that runs inference (vision::fpu, issue 9): the embedding must not move.
    assert!(
        classproof::vision::fpu::subnormals_flushed(),
        "inference ran without FTZ/DAZ on this thread"
    );
    let cos = classproof::vision::embed::cosine(&e, &GOLDEN_EMBEDDING)
        / GOLDEN_EMBEDDING.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(cos >= 0.9999, "cosine to the golden embedding {cos}");
}

#[test]
fn batched_embeddings_equal_one_by_one_embeddings() {
    let mut p = pipeline();
    assert!(
        p.embedding_batched(),
        "fr_feature was not made batchable (onnx_edit)"
    );
    let mut crops = Vec::new();
    for name in [
        "obama.jpg",
        "obama2.jpg",
        "biden.jpg",
        "image_T1.jpg",
        "image_F1.jpg",
    ] {
        let img = BgrImage::load(&shared().join("models/testdata").join(name)).unwrap();
        crops.extend(
            p.analyse(
                &img,
                Stages {
                    liveness: false,
                    embedding: false,
                },
            )
            .unwrap(),
        );
    }
    let crops: Vec<&BgrImage> = crops.iter().map(|f| &f.aligned).cycle().take(8).collect();
    let batch = p.embed_aligned(&crops).unwrap();
    assert_eq!(batch.len(), 8);
    for (c, b) in crops.iter().zip(&batch) {
        let one = p.embed_aligned(&[c]).unwrap().remove(0);
        let worst = one
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "batch vs single: {worst}");
        let norm: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}

// ---------------------------------------------------------------------------------------------
// Recognition on the dev photo sets, through `calibrate`.

/// Runs `calibrate ARGS --json --scores FILE`; returns the report and the scored pairs
/// (same, similarity).
/// A row of `--scores`: path_a, path_b, same, similarity.
type ScoreRow = (String, String, bool, Option<f32>);

fn calibrate(args: &[&str]) -> (serde_json::Value, Vec<ScoreRow>) {
    let dir = tempfile::tempdir().unwrap();
    let scores = dir.path().join("scores.csv");
    let cfg = config_file(dir.path(), "");
    let mut all = vec![
        "calibrate",
        "--config",
        cfg.to_str().unwrap(),
        "--json",
        "--scores",
        scores.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let out = classproof(&all);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut r = csv::Reader::from_path(&scores).unwrap();
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        ["path_a", "path_b", "same", "similarity"]
    );
    let rows = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            (
                rec[0].to_string(),
                rec[1].to_string(),
                &rec[2] == "1",
                (!rec[3].is_empty()).then(|| rec[3].parse().unwrap()),
            )
        })
        .collect();
    (report, rows)
}

/// A config in `dir` with its data dir beside it and the test models; `extra` is appended to
/// `[vision]`.
fn config_file(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("classproof.toml");
    std::fs::write(
        &path,
        format!(
            "[device]\nid = \"vision-test\"\ndata_dir = \"data\"\n\n[vision]\nmodels_dir = {:?}\n{extra}\n",
            models_dir().display().to_string()
        ),
    )
    .unwrap();
    path
}

fn count(
    rows: &[(String, String, bool, Option<f32>)],
    same: bool,
    pass: impl Fn(f32) -> bool,
) -> (usize, usize) {
    let scored: Vec<f32> = rows.iter().filter(|r| r.2 == same).filter_map(|r| r.3).collect();
    (scored.iter().filter(|s| pass(**s)).count(), scored.len())
}

const THRESHOLD: f32 = ::classproof::vision::config::DEFAULT_MATCH_THRESHOLD;

/// pairs.csv (49 photos of 17 people, 108 genuine and 1068 impostor pairs). Measured with
/// fr_feature (BGR) on 2026-11-22: genuine 0.467–0.958 (mean 0.775), impostor −0.256–0.302
/// (mean 0.015). At the default threshold 0.50 (issue 9: set from the impostor side) 107 of
/// 108 genuine pairs are accepted (the miss is Robert Downey Jr d3 ~ d5, 0.467, the hardest
/// celebrity pair) and all 1068 impostor pairs rejected; NUAA (East-Asian webcam) genuine pairs
/// all pass (minimum 0.609), NUAA impostors reach 0.153, celebrity impostors 0.302.
#[test]
fn pairs_csv_genuine_pairs_match_and_impostors_do_not() {
    let (report, rows) = calibrate(&["--pairs", shared().join("faces-dev/pairs.csv").to_str().unwrap()]);
    let keys: Vec<&String> = report.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "eer",
            "genuine_pairs",
            "impostor_pairs",
            "ms_per_face",
            "no_face",
            "rank1",
            "tar_at_far",
            "threshold"
        ]
    );
    assert_eq!(report["genuine_pairs"]["count"], 108);
    assert_eq!(report["impostor_pairs"]["count"], 1068);
    assert_eq!(report["no_face"], 0);
    assert_eq!(report["rank1"], 1.0);
    assert_eq!(report["eer"], 0.0);
    assert_eq!(report["tar_at_far"]["1e-3"], 1.0);
    assert!(
        report["tar_at_far"]["1e-4"].is_null(),
        "1068 impostor pairs cannot measure 1e-4"
    );
    assert_eq!(
        count(&rows, true, |s| s >= THRESHOLD),
        (107, 108),
        "genuine accepted"
    );
    let missed: Vec<_> = rows
        .iter()
        .filter(|r| r.2 && r.3.is_some_and(|s| s < THRESHOLD))
        .collect();
    assert!(
        missed
            .iter()
            .all(|r| r.0.contains("Robert_Downey_Jr") && r.1.contains("Robert_Downey_Jr")),
        "{missed:?}"
    );
    assert_eq!(
        count(&rows, false, |s| s < THRESHOLD),
        (1068, 1068),
        "impostors rejected"
    );
    // The East-Asian subjects on their own.
    let nuaa: Vec<_> = rows
        .iter()
        .filter(|r| r.0.starts_with("nuaa/") && r.1.starts_with("nuaa/"))
        .cloned()
        .collect();
    assert_eq!(count(&nuaa, true, |s| s >= THRESHOLD), (81, 81));
    assert_eq!(count(&nuaa, false, |s| s < THRESHOLD), (72, 72));
    let t = report["threshold"].as_f64().unwrap() as f32;
    assert!(
        t < THRESHOLD,
        "the default is stricter than the FAR 1e-3 point ({t})"
    );
}

/// labels.csv, identity photos, singletons and the NUAA live and print captures (prints are the
/// same people, so they count for identity): 738 genuine and 2832 impostor pairs. Measured on
/// 2026-11-22 at the threshold 0.40: 709 of 738 genuine pairs accepted (96.1%; at the default
/// 0.50 since issue 9: 702 of 738; the
/// misses are print-attack photos against live ones, one NUAA print is detected on the wrong
/// region), 2832 of 2832 impostor pairs rejected (maximum 0.302), rank-1 0.985.
#[test]
fn labels_csv_genuine_pairs_match_and_impostors_do_not() {
    let labels = shared().join("faces-dev/labels.csv");
    let (report, rows) = calibrate(&[
        "--labels",
        labels.to_str().unwrap(),
        "--kind",
        "identity",
        "--kind",
        "singleton",
        "--kind",
        "spoof_live",
        "--kind",
        "spoof_print",
    ]);
    assert_eq!(report["no_face"], 0, "{report}");
    let genuine = count(&rows, true, |s| s >= THRESHOLD);
    let impostor = count(&rows, false, |s| s < THRESHOLD);
    eprintln!("labels.csv: genuine accepted {genuine:?}, impostors rejected {impostor:?}, {report}");
    assert_eq!(impostor.0, impostor.1, "no impostor pair may match");
    assert_eq!(genuine.1, 738);
    assert!(genuine.0 >= 700, "{genuine:?}");
}

// ---------------------------------------------------------------------------------------------
// Liveness, enrollment, identify.

/// Every print and replay of faces-dev (spoof/print, spoof/replay, 36 NUAA prints) is below the
/// liveness threshold (measured maximum 0.342); the live captures: spoof/live 2 of 2, NUAA live
/// 15 of 18 (three frames of subject 0001 look like prints to MiniFASNet: 0.446, 0.074, 0.081).
#[test]
fn spoof_samples_are_rejected_and_live_faces_pass() {
    let mut p = pipeline();
    let root = shared().join("faces-dev");
    let live_score = |p: &mut Pipeline, path: &Path| {
        let img = BgrImage::load(path).unwrap();
        let f = largest(
            p.analyse(
                &img,
                Stages {
                    liveness: true,
                    embedding: false,
                },
            )
            .unwrap(),
        )
        .unwrap();
        let l = f.liveness.unwrap();
        (p.is_live(&l), l.real())
    };
    let files = |dir: &str| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = walk(&root.join(dir));
        v.sort();
        v
    };
    let spoofs: Vec<PathBuf> = ["spoof/print", "spoof/replay", "nuaa/print"]
        .iter()
        .flat_map(|d| files(d))
        .collect();
    assert_eq!(spoofs.len(), 39);
    for s in &spoofs {
        let (live, real) = live_score(&mut p, s);
        assert!(!live, "{} passed liveness with {real}", s.display());
    }
    for s in files("spoof/live") {
        let (live, real) = live_score(&mut p, &s);
        assert!(live, "{} failed liveness with {real}", s.display());
    }
    let nuaa_live = files("nuaa/live");
    let passed = nuaa_live.iter().filter(|s| live_score(&mut p, s).0).count();
    assert_eq!((passed, nuaa_live.len()), (15, 18));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn enrollment_rejects_photos_with_a_reason_each() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), "");
    let f = shared().join("faces-dev");
    let photos = [
        "negatives/dogs.jpg",
        "negatives/mask_blue.jpg",
        "negatives/no_face.png",
        "negatives/view.jpg",
        "groups/two_people.jpg",
        "spoof/print/silentface_image_F1.jpg",
        "spoof/replay/silentface_image_F2.jpg",
        "variants/Barack_Obama/obama-240p.jpg",
    ];
    // A blurred copy of a good photo.
    let sharp = BgrImage::load(&f.join("identities/Barack_Obama/obama.jpg")).unwrap();
    let blurred = sharp
        .resize(sharp.width / 12, sharp.height / 12)
        .unwrap()
        .resize(sharp.width, sharp.height)
        .unwrap();
    let blurred_path = dir.path().join("blurred.jpg");
    std::fs::write(&blurred_path, blurred.encode_jpeg(95).unwrap()).unwrap();
    let mut args: Vec<String> = [
        "enroll",
        "--config",
        cfg.to_str().unwrap(),
        "--person",
        "t1",
        "--name",
        "Test",
        "--role",
        "trainee",
    ]
    .map(String::from)
    .to_vec();
    args.extend(photos.iter().map(|p| f.join(p).display().to_string()));
    args.push(blurred_path.display().to_string());
    let out = classproof(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let reason = |photo: &str| {
        t.lines()
            .find(|l| l.contains("rejected") && l.contains(photo))
            .unwrap_or_else(|| panic!("no rejection line for {photo}:\n{t}"))
            .to_string()
    };
    for negative in &photos[..4] {
        assert!(reason(negative).ends_with("no face found"), "{t}");
    }
    assert!(reason("two_people.jpg").contains("2 faces"), "{t}");
    assert!(reason("silentface_image_F1.jpg").contains("liveness"), "{t}");
    assert!(reason("silentface_image_F2.jpg").contains("liveness"), "{t}");
    assert!(
        reason("obama-240p.jpg").contains("face too small: 55 px, need 80"),
        "{t}"
    );
    assert!(reason("blurred.jpg").contains("too blurry"), "{t}");
    assert!(t.contains("0 of 9 photo(s) enrolled"), "{t}");
    // Nobody was enrolled.
    let out = classproof(&["roster", "list", "--config", cfg.to_str().unwrap()]);
    assert!(
        text(&out).contains("0 person(s), 0 template(s)"),
        "{}",
        text(&out)
    );
}

#[test]
fn duplicate_enrollment_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), "");
    let cfg = cfg.to_str().unwrap();
    let f = shared().join("faces-dev/identities/Barack_Obama");
    let enroll = |person: &str, photo: &str| {
        classproof(&[
            "enroll",
            "--config",
            cfg,
            "--person",
            person,
            "--name",
            person,
            "--role",
            "trainee",
            f.join(photo).to_str().unwrap(),
        ])
    };
    let out = enroll("p1", "obama.jpg");
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("WARNING"), "{}", text(&out));
    // The same face under another person id: warned, naming who it looks like.
    let out = enroll("p2", "obama2.jpg");
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("WARNING") && t.contains("looks like p1 (p1), already enrolled"),
        "{t}"
    );
    // The same photo again for p1: refused as already enrolled.
    let out = enroll("p1", "obama.jpg");
    assert!(
        text(&out).contains("already enrolled for this person"),
        "{}",
        text(&out)
    );
}

#[test]
fn roster_import_reports_per_row_masks_id_numbers_and_identify_finds_the_people() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), "");
    let cfg = cfg.to_str().unwrap();
    let f = shared().join("faces-dev");
    // Photo paths relative to the CSV's folder.
    let class = dir.path().join("class");
    std::fs::create_dir_all(&class).unwrap();
    std::os::unix::fs::symlink(&f, class.join("photos")).unwrap();
    let csv = class.join("roster.csv");
    std::fs::write(
        &csv,
        "person_id,name,role,id_number,class,photo1,photo2\n\
         s001,Zhang Wei,trainee,410105199001011234,c1,photos/nuaa/live/0002/0002_01_00_01_124.jpg,photos/nuaa/live/0002/0002_01_00_01_212.jpg\n\
         s002,Li Na,trainee,410105199202023456,c1,photos/nuaa/live/0001/0001_00_00_01_101.jpg,\n\
         t001,Wang Fang,teacher,410105198003035678,c1,photos/identities/Joe_Biden/biden.jpg,\n\
         s003,Nobody,trainee,410105199404047890,c1,photos/negatives/view.jpg,\n\
         s004,Bad Role,pilot,,c1,photos/identities/Joe_Biden/biden.jpg,\n",
    )
    .unwrap();
    let out = classproof(&["roster", "import", "--config", cfg, csv.to_str().unwrap()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "rows 5 and 6 have problems:\n{t}");
    for full in [
        "410105199001011234",
        "410105199202023456",
        "410105198003035678",
        "410105199404047890",
    ] {
        assert!(!t.contains(full), "R15: a full ID number was printed:\n{t}");
    }
    assert!(
        t.contains("row 2: s001 Zhang Wei (410105********1234): 2 of 2 photo(s) enrolled"),
        "{t}"
    );
    assert!(
        t.contains("row 3: s002 Li Na (410105********3456): 1 of 1"),
        "{t}"
    );
    assert!(
        t.contains("row 5: s003 Nobody (410105********7890): 0 of 1"),
        "{t}"
    );
    assert!(
        t.contains("row 6: s004 Bad Role (-): roster: role \"pilot\""),
        "{t}"
    );
    assert!(
        t.contains("5 row(s): 3 person(s) enrolled, 2 row(s) with problems"),
        "{t}"
    );

    let out = classproof(&["roster", "list", "--config", cfg, "--json"]);
    let t = text(&out);
    assert!(!t.contains("410105199001011234"), "{t}");
    let people: Vec<serde_json::Value> = t.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(people.len(), 3);
    assert_eq!(people[0]["person_id"], "s001");
    assert_eq!(people[0]["id_number"], "410105********1234");
    assert_eq!(people[0]["templates"], 2);
    assert_eq!(people[2]["role"], "teacher");

    // identify: one line per face with exactly the keys.
    let out = classproof(&[
        "identify",
        "--config",
        cfg,
        "--json",
        f.join("nuaa/live/0002/0002_01_00_01_496.jpg").to_str().unwrap(),
        f.join("groups/obama_and_biden.jpg").to_str().unwrap(),
        f.join("negatives/view.jpg").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let faces: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(faces.len(), 4, "1 + 3 faces, none in view.jpg: {faces:#?}");
    for face in &faces {
        let keys: Vec<&String> = face.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "box",
                "det_score",
                "image",
                "liveness",
                "margin",
                "name",
                "person_id",
                "similarity"
            ]
        );
        assert_eq!(face["box"].as_array().unwrap().len(), 4);
    }
    assert_eq!(faces[0]["person_id"], "s001");
    assert_eq!(faces[0]["name"], "Zhang Wei");
    assert!(faces[0]["similarity"].as_f64().unwrap() >= THRESHOLD as f64);
    assert!(faces[0]["liveness"].as_f64().unwrap() > 0.5);
    let ids: Vec<&serde_json::Value> = faces[1..].iter().map(|f| &f["person_id"]).collect();
    assert!(
        ids.contains(&&serde_json::json!("t001")),
        "Biden was enrolled as t001: {faces:#?}"
    );
    assert_eq!(
        ids.iter().filter(|i| i.is_null()).count(),
        2,
        "Obama and the third face are unknown"
    );
}

#[test]
fn calibrate_scores_leave_the_similarity_empty_when_a_photo_has_no_face() {
    let dir = tempfile::tempdir().unwrap();
    let f = shared().join("faces-dev");
    let pairs = dir.path().join("pairs.csv");
    std::fs::write(
        &pairs,
        format!(
            "path_a,path_b,same\n{0}/identities/Joe_Biden/biden.jpg,{0}/identities/Joe_Biden/biden2.jpg,1\n\
             {0}/identities/Joe_Biden/biden.jpg,{0}/negatives/view.jpg,0\n",
            f.display()
        ),
    )
    .unwrap();
    let (report, rows) = calibrate(&["--pairs", pairs.to_str().unwrap()]);
    assert_eq!(report["no_face"], 1);
    assert_eq!(report["genuine_pairs"]["count"], 1);
    assert_eq!(report["impostor_pairs"]["count"], 0);
    assert!(rows[0].3.is_some());
    assert_eq!(rows[1].3, None, "{rows:?}");
}

#[test]
fn a_missing_or_wrong_runtime_library_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    for (lib, expect) in [
        ("/nonexistent/libonnxruntime.so", "no such file"),
        ("/bin/sh", "not a usable ONNX Runtime library"),
    ] {
        let cfg = config_file(dir.path(), &format!("ort_library = {lib:?}"));
        let out = classproof(&[
            "identify",
            "--config",
            cfg.to_str().unwrap(),
            shared().join("models/testdata/obama.jpg").to_str().unwrap(),
        ]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{t}");
        assert!(t.contains(lib) && t.contains(expect), "{t}");
        assert!(!t.contains("panicked"), "{t}");
    }
}

/// Issue 9, item 3: classes in `roster import` (`class_id`, several separated by `;`) and on
/// `enroll --class`, shown by `roster list`; R10 `max_trainees` refuses a file whose class
/// would be too large, naming the file, the row and the class; `roster remove` deletes the
/// templates with a `roster_removed` record (R15).
#[test]
fn roster_classes_are_imported_limited_listed_and_a_removal_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), "\n[rules]\nprofile = \"custom\"\nmax_trainees = 2\n");
    let cfg = cfg.to_str().unwrap();
    let f = shared().join("faces-dev");
    let photo = |p: &str| f.join(p).to_str().unwrap().to_string();
    let (a1, a2) = (
        photo("nuaa/live/0002/0002_01_00_01_124.jpg"),
        photo("nuaa/live/0002/0002_01_00_01_212.jpg"),
    );
    let b1 = photo("nuaa/live/0001/0001_00_00_01_101.jpg");
    let t1 = photo("identities/Joe_Biden/biden.jpg");
    let csv = dir.path().join("roster.csv");
    std::fs::write(
        &csv,
        format!(
            "person_id,name,role,id_number,class_id,photo\n\
             s001,Zhang Wei,trainee,410105199001011234,c1;c2,{a1}\n\
             s002,Li Na,trainee,,c1,{b1}\n\
             t001,Wang Fang,teacher,,c1;c2,{t1}\n"
        ),
    )
    .unwrap();
    let out = classproof(&["roster", "import", "--config", cfg, csv.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));

    let list = || -> Vec<serde_json::Value> {
        let out = classproof(&["roster", "list", "--config", cfg, "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let people = list();
    assert_eq!(people.len(), 3);
    assert_eq!(people[0]["classes"], serde_json::json!(["c1", "c2"]));
    assert_eq!(people[1]["classes"], serde_json::json!(["c1"]));
    assert_eq!(people[2]["classes"], serde_json::json!(["c1", "c2"]));
    let out = classproof(&["roster", "list", "--config", cfg]);
    assert!(text(&out).contains("c1;c2"), "{}", text(&out));

    // R10: a third trainee in c1 is refused, naming the file, the row and the class; nothing
    // of the file is imported (not even the row before it). The teacher does not count.
    let more = dir.path().join("more.csv");
    std::fs::write(
        &more,
        format!(
            "person_id,name,role,id_number,class_id,photo\n\
             t002,Zhao Min,teacher,,c1,{t1}\n\
             s003,Chen Jie,trainee,,c2;c1,{a2}\n"
        ),
    )
    .unwrap();
    let out = classproof(&["roster", "import", "--config", cfg, more.to_str().unwrap()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains(&format!(
            "{}: row 3: class c1 would have 3 trainees",
            more.display()
        )) && t.contains("max_trainees = 2")
            && t.contains("R10"),
        "{t}"
    );
    assert_eq!(list().len(), 3, "nothing imported");
    // A class id with a character a class id may not have is that row's problem.
    std::fs::write(
        &more,
        format!("person_id,name,role,id_number,class_id,photo\ns004,Zhou Yu,trainee,,c 9,{a2}\n"),
    )
    .unwrap();
    let out = classproof(&["roster", "import", "--config", cfg, more.to_str().unwrap()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("row 2: s004 Zhou Yu (-): column class_id: roster: class id \"c 9\""),
        "{t}"
    );

    // enroll --class adds (repeatable); over the limit it is refused before any photo is read.
    let out = classproof(&[
        "enroll", "--config", cfg, "--person", "s002", "--name", "Li Na", "--role", "trainee", "--class",
        "c3", "--class", "c2", &b1,
    ]);
    // The photo is already enrolled (exit 1) but the classes are applied with the person.
    assert!(text(&out).contains("class c1;c2;c3"), "{}", text(&out));
    assert_eq!(list()[1]["classes"], serde_json::json!(["c1", "c2", "c3"]));
    let out = classproof(&[
        "enroll", "--config", cfg, "--person", "s005", "--name", "Sun Li", "--role", "trainee", "--class",
        "c1", &a2,
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("--class c1: the class would have 3 trainees"), "{t}");

    // roster remove: templates gone, a typed record with the masked ID number only (R15).
    let out = classproof(&["roster", "remove", "--config", cfg, "s001"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("1 template(s) deleted"), "{t}");
    assert!(!t.contains("410105199001011234"), "{t}");
    let people = list();
    assert_eq!(people.len(), 2);
    assert!(people.iter().all(|p| p["person_id"] != "s001"));
    let out = classproof(&["events", "--config", cfg, "--type", "roster_removed", "--json"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(!t.contains("410105199001011234"), "R15: {t}");
    let recs: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 1, "{t}");
    assert_eq!(recs[0]["person_id"], "s001");
    assert_eq!(recs[0]["id_number_masked"], "410105********1234");
    assert_eq!(recs[0]["templates_removed"], 1);
    assert_eq!(recs[0]["classes"], serde_json::json!(["c1", "c2"]));
    // identify no longer finds the removed person; removing them again is an error.
    let out = classproof(&["identify", "--config", cfg, "--json", &a2]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("\"s001\""),
        "{}",
        text(&out)
    );
    let out = classproof(&["roster", "remove", "--config", cfg, "s001"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // The log still verifies with the new record in it.
    let out = classproof(&["verify", "--config", cfg]);
    assert!(out.status.success(), "{}", text(&out));
}
