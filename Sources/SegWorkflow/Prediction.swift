import Foundation
import SegAugment
import SegCore
import SegIO
import SegModel
import SegPipeline
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
  /// The symmetries each tile's prediction is averaged over.
  public var tta: TestTimeAugmentation = .none
  /// Output tile size (pixels per side) and context margin per side.
  public let tileOutput: Int
  public let margin: Int

  /// Loads a checkpoint and chooses the tile: for a valid network the smallest legal output of at
  /// least `tile` (default 512) pixels; for a same network an input of about `tile` plus context.
  ///
  /// - Parameters:
  ///   - context: the context per side for a same-padding network (default: its geometry's
  ///     ``NetworkGeometry/defaultPredictionContext``).
  ///   - settings: overrides the checkpoint's prediction settings.
  ///   - threshold: overrides the foreground threshold (two classes; 0.5 is the argmax).
  public init(
    checkpointPath: String, tile: Int? = nil, context: Int? = nil, settings: InferenceSettings? = nil, threshold: Float? = nil
  ) throws {
    try self.init(
      checkpoint: try Checkpoint.read(from: checkpointPath), path: checkpointPath, tile: tile, context: context, settings: settings,
      threshold: threshold)
  }

  /// A predictor for a checkpoint in memory (`path` names it in errors).
  public init(
    checkpoint: Checkpoint, path: String? = nil, tile: Int? = nil, context: Int? = nil, settings: InferenceSettings? = nil,
    threshold: Float? = nil
  ) throws {
    self.checkpoint = checkpoint
    model = checkpoint.model
    var chosen = settings ?? checkpoint.inference
    if let threshold { chosen.threshold = threshold }
    if let problem = chosen.problem(for: model.configuration) {
      throw WorkflowError(.badSettings, path: path, "cannot predict with these settings: \(problem)")
    }
    self.settings = chosen
    normalize = try Predictor.normalization(of: checkpoint, path: path)
    let geometry = model.configuration.geometry
    let target = max(1, tile ?? 512)
    switch geometry.padding {
    case .valid:
      // The smallest legal output ≥ target, so an image of `target` pixels per side is one pass
      // (the largest output ≤ 512 would be 500 for depth 4 and take four passes of a 512² image).
      let best = geometry.nearestInput(forOutputAtLeast: target)
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

  /// The checkpoint's normalisation (see ``TrainingNormalization``), its errors naming the file.
  static func normalization(of checkpoint: Checkpoint, path: String?) throws -> [NormalizeStage] {
    do {
      return try TrainingNormalization(metadata: checkpoint.metadata, file: path ?? "the checkpoint").stages
    } catch {
      let key = error.key.map { $0 + ": " } ?? ""
      throw WorkflowError(.incompatible, path: path, "its normalisation cannot be used: \(key)\(error.message)")
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
    let plan = OverlapTilePlan(
      imageWidth: image.width, imageHeight: image.height, tileOutput: tileOutput, margin: margin,
      alignment: model.configuration.geometry.sizeMultiple)
    let size = tileOutput + 2 * margin
    let workspace = model.predictionWorkspace(inputShape: TensorShape(n: 1, c: image.channels, h: size, w: size), settings: settings)
    let k = model.configuration.labelClasses
    var outputs: [Image] = []
    for tile in plan.tiles {
      let input = plan.input(tile, of: image)
      let x = Tensor(shape: TensorShape(n: 1, c: input.channels, h: size, w: size), data: input.floatSamples())
      let p = tta.average(x) { model.predict($0, settings: settings, workspace: workspace) }
      // A valid network returns exactly the output window; a same network returns the whole
      // input window: keep its centre.
      let full = Image(width: p.shape.w, height: p.shape.h, channels: k, pixels: p.data)
      let off = (p.shape.w - tileOutput) / 2
      outputs.append(OverlapTilePlan.crop(full, x: off, y: off, width: tileOutput, height: tileOutput))
    }
    return plan.stitch(outputs)
  }

  /// The class of every pixel: with a threshold (two classes), 1 where p_1 ≥ threshold; else
  /// the most probable class.
  public func labels(_ probabilities: Image) -> [Int32] {
    guard let t = settings.threshold, probabilities.channels == 2 else { return Predictor.labels(probabilities) }
    let n = probabilities.planeSize
    let p = probabilities.floatSamples()
    return (0..<n).map { p[n + $0] >= t ? 1 : 0 }
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

  /// Predicts every image and writes DIR/NAME.png and DIR/NAME.prob.tif (K float32 pages) or
  /// DIR/NAME.prob.npy.
  public func run(
    images: [String], outputDirectory: String, probabilityFormat: ProbabilityFormat = .tif, log: (String) -> Void
  ) throws -> [String] {
    try FileIO.makeDirectories(outputDirectory)
    var written: [String] = []
    for path in images {
      let image = try load(path)
      let start = MonotonicClock.seconds()
      let p = probabilities(image)
      let labels = self.labels(p)
      let stem = ImageFiles.stem(path)
      let labelPath = outputDirectory + "/" + stem + ".png"
      let probPath = outputDirectory + "/" + stem + probabilityFormat.suffix
      let label = Predictor.labelImage(labels, width: image.width, height: image.height, classes: model.configuration.labelClasses)
      try FileIO.writeAtomically(try PNGCodec.encode(label), to: labelPath)
      try FileIO.writeAtomically(try probabilityFormat.encode(p), to: probPath)
      log(String(format: "%@: %d × %d → %@ and %@ (%.2f s)", path, image.width, image.height, labelPath, probPath, MonotonicClock.seconds() - start))
      written.append(labelPath)
    }
    return written
  }
}
