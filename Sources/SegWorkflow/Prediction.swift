import Foundation
import SegAugment
import SegCore
import SegIO
import SegModel
import SegTiling
import SegTrain

/// `unet predict`: overlap-tile inference of whole images of any size with a checkpoint, for
/// every architecture (U-Net++: the mean of the heads or a pruned head; UNet 3+: the gated P_0).
public struct Predictor {
  public let checkpoint: Checkpoint
  public let model: Network
  /// How the network's heads make the prediction (the checkpoint's, unless overridden).
  public let settings: InferenceSettings
  let normalize: [NormalizeStage]
  /// Output tile size (pixels per side) and context margin per side.
  public let tileOutput: Int
  public let margin: Int

  /// Loads a checkpoint and chooses the tile: the network's input is the largest legal size
  /// whose output is at most `tile` (default 512) pixels.
  ///
  /// - Parameters:
  ///   - context: the context per side for a same-padding network (default: its geometry's
  ///     ``NetworkGeometry/defaultPredictionContext``).
  ///   - settings: overrides the checkpoint's prediction settings.
  public init(checkpointPath: String, tile: Int? = nil, context: Int? = nil, settings: InferenceSettings? = nil) throws {
    checkpoint = try Checkpoint.read(from: checkpointPath)
    model = checkpoint.model
    let chosen = settings ?? checkpoint.inference
    if let problem = chosen.problem(for: model.configuration) {
      throw WorkflowError(.badSettings, path: checkpointPath, "cannot predict with these settings: \(problem)")
    }
    self.settings = chosen
    normalize = Predictor.normalizeStages(checkpoint.metadata)
    let geometry = model.configuration.geometry
    let target = max(1, tile ?? 512)
    switch geometry.padding {
    case .valid:
      // The largest output ≤ target (the smallest legal one if none is).
      var best = geometry.nearestInput(forOutputAtLeast: 1)
      var candidate = best
      while candidate.output <= target {
        best = candidate
        candidate = geometry.nearestInput(forOutputAtLeast: candidate.output + 1)
      }
      tileOutput = best.output
      margin = (best.input - best.output) / 2
    case .same:
      // A same-padding network sees zeros at its input border: give it context of its own.
      let unit = geometry.sizeMultiple
      let m = context ?? geometry.defaultPredictionContext
      let input = max(unit, ((target + 2 * m) / unit) * unit)
      margin = m
      tileOutput = max(1, input - 2 * m)
    }
  }

  static func normalizeStages(_ metadata: [String: String]) -> [NormalizeStage] {
    guard let text = metadata["normalize"], let value = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)),
      case .array(let stages) = value
    else { return [] }
    var stats: ChannelStatistics? = nil
    var overall: ChannelStatistics? = nil
    if let text = metadata["dataset_statistics"], let s = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)),
      case .array(let mean)? = s["mean"], case .array(let std)? = s["std"], let ma = s["mean_all"]?.number, let sa = s["std_all"]?.number
    {
      stats = ChannelStatistics(mean: mean.compactMap(\.number), std: std.compactMap(\.number))
      overall = ChannelStatistics(mean: [ma], std: [sa])
    }
    return stages.compactMap { s in
      guard case .string(let method)? = s["method"] else { return nil }
      let perChannel = s["per_channel"] != .bool(false)
      switch method {
      case "minmax": return NormalizeStage(method: .minmax, perChannel: perChannel)
      case "scale": return NormalizeStage(method: .scale(s["factor"]?.number ?? 1), perChannel: perChannel)
      case "percentile":
        return NormalizeStage(method: .percentile(low: s["low"]?.number ?? 1, high: s["high"]?.number ?? 99), perChannel: perChannel)
      case "zscore":
        if case .string("dataset")? = s["scope"] {
          return NormalizeStage(method: .zscoreDataset, perChannel: perChannel, datasetStatistics: perChannel ? stats : overall)
        }
        return NormalizeStage(method: .zscoreImage, perChannel: perChannel)
      default: return nil
      }
    }
  }

  /// Decodes, normalises as in training, and checks the channel count.
  public func load(_ path: String) throws -> Image {
    let decoded = try ImageDecoder.read(path)
    guard Image.canStack(decoded.pages) else {
      throw WorkflowError(.badInput, path: path, "its pages differ in size or type")
    }
    var image = Image.stack(decoded.pages.map { $0.toFloat32() })
    guard image.channels == model.configuration.inputChannels else {
      throw WorkflowError(
        .incompatible, path: path, "has \(image.channels) channels; the network was trained on \(model.configuration.inputChannels)")
    }
    for stage in normalize {
      NormalizeStage.apply(stage.method, perChannel: stage.perChannel, dataset: stage.datasetStatistics, to: &image)
    }
    return image
  }

  /// Class probabilities (K × H × W) of a whole image by overlap-tiling.
  public func probabilities(_ image: Image) -> Image {
    let plan = OverlapTilePlan(imageWidth: image.width, imageHeight: image.height, tileOutput: tileOutput, margin: margin)
    let size = tileOutput + 2 * margin
    let workspace = model.predictionWorkspace(inputShape: TensorShape(n: 1, c: image.channels, h: size, w: size), settings: settings)
    let k = model.configuration.labelClasses
    var outputs: [Image] = []
    for tile in plan.tiles {
      let input = plan.input(tile, of: image)
      let p = model.predict(
        Tensor(shape: TensorShape(n: 1, c: input.channels, h: size, w: size), data: input.floatSamples()), settings: settings,
        workspace: workspace)
      // A valid network returns exactly the output window; a same network returns the whole
      // input window: keep its centre.
      let full = Image(width: p.shape.w, height: p.shape.h, channels: k, pixels: p.data)
      let off = (p.shape.w - tileOutput) / 2
      outputs.append(OverlapTilePlan.crop(full, x: off, y: off, width: tileOutput, height: tileOutput))
    }
    return plan.stitch(outputs)
  }

  /// The most probable class per pixel.
  public static func labels(_ probabilities: Image) -> [Int32] {
    let n = probabilities.planeSize
    let p = probabilities.floatSamples()
    return (0..<n).map { i in
      var best = 0
      var value = p[i]
      for c in 1..<max(probabilities.channels, 1) where p[c * n + i] > value {
        best = c
        value = p[c * n + i]
      }
      return Int32(best)
    }
  }

  /// The label image written for a prediction: two classes as 0/255 (the usual binary mask),
  /// more as class ids.
  public static func labelImage(_ labels: [Int32], width: Int, height: Int, classes: Int) -> Image {
    if classes <= 2 { return Image(width: width, height: height, pixels: labels.map { $0 == 0 ? UInt8(0) : 255 }) }
    if classes <= 256 { return Image(width: width, height: height, pixels: labels.map { UInt8($0) }) }
    return Image(width: width, height: height, pixels: labels.map { UInt16($0) })
  }

  /// Predicts every image and writes DIR/NAME.png and DIR/NAME.prob.tif (K float32 planes).
  public func run(images: [String], outputDirectory: String, log: (String) -> Void) throws -> [String] {
    try FileIO.makeDirectories(outputDirectory)
    var written: [String] = []
    for path in images {
      let image = try load(path)
      let start = MonotonicClock.seconds()
      let p = probabilities(image)
      let labels = Predictor.labels(p)
      let stem = ImageFiles.stem(path)
      let labelPath = outputDirectory + "/" + stem + ".png"
      let probPath = outputDirectory + "/" + stem + ".prob.tif"
      let label = Predictor.labelImage(labels, width: image.width, height: image.height, classes: model.configuration.labelClasses)
      try FileIO.writeAtomically(try PNGCodec.encode(label), to: labelPath)
      try FileIO.writeAtomically(
        try TIFFCodec.encode([p], options: .init(compression: .deflate, predictor: true, separatePlanes: true, rgb: false)), to: probPath)
      log(String(format: "%@: %d × %d → %@ and %@ (%.2f s)", path, image.width, image.height, labelPath, probPath, MonotonicClock.seconds() - start))
      written.append(labelPath)
    }
    return written
  }
}
