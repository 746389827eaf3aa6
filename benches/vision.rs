//! Face pipeline benchmarks, one core (`vision.threads = 1`): detection per 640×640 frame,
//! embedding per face (batch 1 and 8), liveness per face, 1:N search over 1k/10k/100k
//! templates, and the whole pipeline in faces per second.
//!
//! The reference is the same models run from Python onnxruntime 1.31.1 on the same inputs:
//! `benches/vision/compare.sh` runs both and prints the ratios (docs/vision.md, Performance).
//! Models come from `CLASSPROOF_MODELS_DIR` (default /usr/local/share/classproof/models),
//! photos from ../shared.

use std::hint::black_box;
use std::path::PathBuf;

use classproof::vision::gallery::Gallery;
use classproof::vision::{BgrImage, Pipeline, Stages, VisionConfig};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

fn pipeline() -> Pipeline {
    let models_dir = std::env::var_os("CLASSPROOF_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(classproof::vision::config::DEFAULT_MODELS_DIR));
    let config = VisionConfig {
        models_dir,
        threads: 1,
        ..VisionConfig::default()
    };
    Pipeline::load(&config).unwrap_or_else(|e| {
        panic!("{e}\n(install the models: cargo run --release -- models fetch --mirror ../shared/models)")
    })
}

/// The benchmark frame: groups/obama_and_biden.jpg (3 faces) letterboxed into 640×640, as a
/// camera frame of the detector's own size.
pub fn frame() -> BgrImage {
    let img = BgrImage::load(&shared().join("faces-dev/groups/obama_and_biden.jpg")).expect("photo");
    let scale = (640.0 / img.width as f32).min(640.0 / img.height as f32);
    let (w, h) = (
        (img.width as f32 * scale) as usize,
        (img.height as f32 * scale) as usize,
    );
    let small = img.resize(w, h).unwrap();
    let mut out = BgrImage::zeros(640, 640);
    for y in 0..h {
        out.data[y * 640 * 3..y * 640 * 3 + w * 3].copy_from_slice(&small.data[y * w * 3..(y + 1) * w * 3]);
    }
    out
}

fn stages(c: &mut Criterion) {
    let mut p = pipeline();
    let frame = frame();
    let dets = p.detect(&frame).unwrap();
    assert_eq!(dets.len(), 3, "the benchmark frame has 3 faces");
    let faces = p
        .analyse_detections(
            &frame,
            dets.clone(),
            Stages {
                liveness: false,
                embedding: false,
            },
        )
        .unwrap();
    let crops: Vec<&BgrImage> = faces.iter().map(|f| &f.aligned).cycle().take(8).collect();

    c.bench_function("vision/detect_640x640", |b| {
        b.iter(|| black_box(p.detect(black_box(&frame)).unwrap()))
    });

    let mut g = c.benchmark_group("vision/embed");
    for n in [1usize, 8] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("batch", n), &n, |b, &n| {
            b.iter(|| black_box(p.embed_aligned(&crops[..n]).unwrap()))
        });
    }
    g.finish();

    c.bench_function("vision/liveness_per_face", |b| {
        b.iter(|| black_box(p.liveness(&frame, &dets[0]).unwrap()))
    });

    let mut g = c.benchmark_group("vision/pipeline");
    g.sample_size(20);
    g.throughput(Throughput::Elements(3));
    g.bench_function("frame_3_faces", |b| {
        b.iter(|| black_box(p.analyse(&frame, Stages::ALL).unwrap()))
    });
    g.finish();
}

/// A gallery of `n` persons with one random unit template each (fixed seed).
pub fn random_gallery(n: usize, dim: usize) -> Gallery {
    let mut g = Gallery::new("bench", dim);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    for i in 0..n {
        let mut v: Vec<f32> = (0..dim).map(|_| next()).collect();
        classproof::vision::embed::l2_normalise(&mut v);
        g.add(&format!("p{i}"), "x", "trainee", &[v]);
    }
    g
}

fn search(c: &mut Criterion) {
    let mut g = c.benchmark_group("vision/search");
    for n in [1_000usize, 10_000, 100_000] {
        let gallery = random_gallery(n, 512);
        let mut q: Vec<f32> = (0..512).map(|i| ((i * 7919) % 101) as f32 - 50.0).collect();
        classproof::vision::embed::l2_normalise(&mut q);
        g.bench_with_input(BenchmarkId::new("templates", n), &n, |b, _| {
            b.iter(|| black_box(gallery.search(black_box(&q))))
        });
    }
    g.finish();
}

criterion_group!(benches, stages, search);
criterion_main!(benches);
