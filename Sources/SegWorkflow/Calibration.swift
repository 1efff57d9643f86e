import SegCache
import SegCore
import SegIO
import SegModel
import SegTrain

/// A foreground threshold chosen on the validation images after training.
public struct CalibrationResult: Sendable, Equatable {
  public var metric: CalibrationMetric
  public var threshold: Float
  /// The metric (mean over the images) at the threshold, and at 0.5 (the argmax).
  public var error: Double
  public var errorAtHalf: Double
  public var images: Int
}

/// Chooses the foreground threshold of a two-class network that minimises an error over whole
/// validation images (predicted by overlap-tile as `unet predict` would, from the source files
/// the shards were made from): every threshold 0.02, 0.03, …, 0.98; ties go to the one nearest
/// 0.5. The test slices of a protocol must not be among the validation sources.
public enum Calibration {
  /// The candidate thresholds.
  public static let candidates: [Float] = (2...98).map { Float($0) / 100 }

  /// The best threshold for foreground probabilities `p` against true foreground masks `truth`
  /// (one pair per image, each with its width and height).
  public static func choose(
    _ images: [(p: [Float], truth: [Bool], width: Int, height: Int)], metric: CalibrationMetric
  ) -> CalibrationResult {
    precondition(!images.isEmpty, "Calibration: no images")
    func error(_ t: Float) -> Double {
      var total = 0.0
      for im in images {
        switch metric {
        case .pixelError:
          var wrong = 0
          for i in 0..<im.p.count where (im.p[i] >= t) != im.truth[i] { wrong += 1 }
          total += Double(wrong) / Double(im.p.count)
        case .randError:
          total += SegmentationMetrics.randError(truthMask: im.truth, proposalMask: im.p.map { $0 >= t }, width: im.width, height: im.height).error
        }
      }
      return total / Double(images.count)
    }
    var best: (t: Float, e: Double) = (0.5, error(0.5))
    let half = best.e
    for t in candidates {
      let e = error(t)
      if e < best.e || (e == best.e && abs(t - 0.5) < abs(best.t - 0.5)) { best = (t, e) }
    }
    return CalibrationResult(metric: metric, threshold: best.t, error: best.e, errorAtHalf: half, images: images.count)
  }

  /// Predicts the validation sources of `manifest` whole with `checkpoint` and chooses the
  /// threshold. Source paths are as the manifest recorded them (relative paths are tried from the
  /// working folder, then from the pipeline file's folder).
  public static func calibrate(
    _ checkpoint: Checkpoint, manifest: ShardManifest, shardsDirectory: String, validationSources: [String],
    metric: CalibrationMetric
  ) throws -> CalibrationResult {
    guard checkpoint.model.configuration.labelClasses == 2 else {
      throw WorkflowError(.badSettings, "calibration chooses a foreground threshold: it needs two classes, this network has \(checkpoint.model.configuration.labelClasses)")
    }
    var uncalibrated = checkpoint
    uncalibrated.inference.threshold = nil
    let predictor = try Predictor(checkpoint: uncalibrated)
    var images: [(p: [Float], truth: [Bool], width: Int, height: Int)] = []
    for stem in validationSources {
      guard let source = manifest.sources.first(where: { $0.stem == stem }), let image = source.images.first, let mask = source.mask else {
        throw WorkflowError(.badShards, path: shardsDirectory + "/manifest.json", "validation source \"\(stem)\" has no image and mask recorded")
      }
      let imagePath = try locate(image.path, manifest: manifest, shards: shardsDirectory)
      let x = try predictor.load(imagePath)
      let p = predictor.probabilities(x)
      let truth = try LabelMask.read(try locate(mask.path, manifest: manifest, shards: shardsDirectory))
      guard truth.width == x.width && truth.height == x.height else {
        throw WorkflowError(.badInput, path: mask.path, "is \(truth.width) × \(truth.height), its image \(x.width) × \(x.height)")
      }
      let n = x.planeSize
      images.append((Array(p.floatSamples()[n..<(2 * n)]), truth.labelSamples().map { $0 != 0 }, x.width, x.height))
    }
    guard !images.isEmpty else { throw WorkflowError(.badSettings, "calibration needs validation sources (train.validation)") }
    return choose(images, metric: metric)
  }

  /// `path` if it exists, else relative to the pipeline file's folder.
  static func locate(_ path: String, manifest: ShardManifest, shards: String) throws -> String {
    if FileIO.exists(path) { return path }
    if !path.hasPrefix("/"), let pipeline = manifest.pipelineFile {
      let folder = pipeline.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
      let candidate = (folder.isEmpty ? "." : folder) + "/" + path
      if FileIO.exists(candidate) { return candidate }
    }
    throw WorkflowError(.badInput, path: path, "a validation source of \(shards) is not readable from here", hint: "run from the folder prepare ran in")
  }
}
