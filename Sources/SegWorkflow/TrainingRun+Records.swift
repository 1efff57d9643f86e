import Foundation
import SegCache
import SegCore
import SegIO
import SegRender
import SegTrain

/// What a run writes: validation records, the metrics log, checkpoints and the plot.
extension TrainingRun {
  /// Loss, Dice and IoU per class and pixel error over the validation samples (the scores of
  /// all their pixels pooled).
  func validate() throws {
    guard !data.validationMembers.isEmpty else { return }
    var lossSum = 0.0
    var counts = ConfusionCounts(classes: data.classes)
    var count = 0
    for (shard, member) in data.validationMembers {
      if skipped.contains(shard) { continue }
      let sample: StoredSample
      do {
        sample = try data.set.sample(shard: shard, member: member)
      } catch {
        if options.skipCorrupt { continue }
        throw error
      }
      let (input, targets, weights) = try data.batch([sample])
      let (loss, probabilities) = trainer.evaluate(input: input, targets: targets, weights: weights)
      lossSum += loss.total
      counts.add(predicted: SegmentationMetrics.argmax(probabilities), truth: targets)
      count += 1
    }
    guard count > 0 else { return }
    let scores = counts.scores
    let result = ValidationResult(
      step: trainer.stepCount, epoch: trainer.epoch, loss: lossSum / Double(count), dice: scores.dice, iou: scores.iou,
      pixelError: scores.pixelError, samples: count)
    trainer.observe(result.loss)
    lastValidation = result
    validationPoints.append(result)
    try record(.object([
      ("kind", "validation"), ("step", .int(result.step)), ("epoch", .int(result.epoch)), ("loss", .number(result.loss)),
      ("dice", .array(result.dice.map { $0.map { .number($0) } ?? .null })),
      ("iou", .array(result.iou.map { $0.map { .number($0) } ?? .null })),
      ("pixel_error", .number(result.pixelError)), ("samples", .int(count)),
    ]))
    let diceText = result.dice.dropFirst().map { $0.map { String(format: "%.4f", $0) } ?? "-" }.joined(separator: "/")
    log(String(format: "validation at step %d: loss %.4f  dice %@  pixel error %.4f  (%d samples)", result.step, result.loss, diceText, result.pixelError, count))
    try writePlot()
  }

  /// Appends a line to metrics.jsonl (a kill mid-line leaves a partial line, which readers and a
  /// resumed run skip). A failed write stops the run with the file named.
  func record(_ line: JSONValue) throws {
    history.append(line)
    try FileIO.append(Array((line.serialized() + "\n").utf8), to: metricsPath)
  }

  func checkpoint(named: Bool) throws {
    var metadata = metadataBase
    metadata["epoch_samples"] = String(epochSamples)
    let c = Checkpoint(trainer, inference: options.section.prediction, metadata: metadata)
    try c.write(to: lastCheckpointPath)
    if named {
      let s = String(trainer.stepCount)
      try c.write(to: options.runDirectory + "/step-" + String(repeating: "0", count: max(0, 6 - s.count)) + s + ".ckpt")
    }
  }

  func writePlot() throws {
    let loss = LinePlot(
      title: "loss", xLabel: "step",
      series: [
        .init(name: "train", color: .blue, points: trainPoints),
        .init(name: "validation", color: .red, points: validationPoints.map { (Double($0.step), $0.loss) }),
      ], logY: true)
    var diceSeries: [LinePlot.Series] = []
    let palette: [RGB] = [.green, .orange, .blue, .red, .yellow]
    for k in 1..<max(data.classes, 2) {
      let points = validationPoints.compactMap { v -> (x: Double, y: Double)? in
        guard k < v.dice.count, let d = v.dice[k] else { return nil }
        return (Double(v.step), d)
      }
      diceSeries.append(.init(name: data.classes == 2 ? "Dice (cells)" : "Dice class \(k)", color: palette[(k - 1) % palette.count], points: points))
    }
    let dice = LinePlot(title: "validation Dice", xLabel: "step", series: diceSeries, yRange: 0...1)
    let top = loss.render(width: 560, height: 280)
    let bottom = dice.render(width: 560, height: 280)
    var canvas = Canvas(width: 560, height: 568)
    canvas.paste(top, x: 0, y: 0)
    canvas.paste(bottom, x: 0, y: 288)
    try FileIO.writeAtomically(try PNGCodec.encode(canvas.image, options: .init(compressionLevel: 3)), to: plotPath)
  }

  // MARK: - Resume helpers

  /// The lines of a metrics log written up to `step` (a resumed run drops what came after the
  /// checkpoint it resumes from).
  static func readHistory(_ path: String, upTo step: Int) -> [(value: JSONValue, line: String)] {
    guard let bytes = try? FileIO.read(path) else { return [] }
    let text = String(decoding: bytes, as: UTF8.self)
    return text.split(separator: "\n").compactMap { line in
      guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(line.utf8)) else { return nil }
      if case .int(let s)? = value["step"], s > step { return nil }
      return (value, String(line))
    }
  }

  static func validation(from line: JSONValue) -> ValidationResult? {
    guard case .int(let step)? = line["step"], case .int(let epoch)? = line["epoch"], let loss = line["loss"]?.number,
      case .array(let dice)? = line["dice"], case .array(let iou)? = line["iou"], let pe = line["pixel_error"]?.number,
      case .int(let n)? = line["samples"]
    else { return nil }
    return ValidationResult(step: step, epoch: epoch, loss: loss, dice: dice.map(\.number), iou: iou.map(\.number), pixelError: pe, samples: n)
  }
}

extension JSONValue {
  /// An int or double as Double.
  public var number: Double? {
    switch self {
    case .int(let i): return Double(i)
    case .double(let d): return d
    default: return nil
    }
  }
}

/// "1:02:03" or "4:05".
public func formatDuration(_ seconds: Double) -> String {
  guard seconds.isFinite else { return "-" }
  let s = Int(seconds.rounded())
  return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
}

/// Parses a duration as people write it on a command line: `900` or `900s` (seconds), `15m`,
/// `1.5h`, `1h30m`, `2d`. Nil for anything else (empty, negative, unknown unit, unit repeated
/// out of order).
public func parseDuration(_ text: String) -> Double? {
  let units: [Character: Double] = ["d": 86400, "h": 3600, "m": 60, "s": 1]
  let order: [Character] = ["d", "h", "m", "s"]
  var total = 0.0
  var number = ""
  var lastUnit = -1
  var sawPart = false
  for c in text.trimmingCharacters(in: .whitespaces) {
    if c.isNumber || c == "." {
      number.append(c)
    } else if let scale = units[c], let index = order.firstIndex(of: c), index > lastUnit, let v = Double(number) {
      total += v * scale
      number = ""
      lastUnit = index
      sawPart = true
    } else {
      return nil
    }
  }
  if !number.isEmpty {
    guard let v = Double(number), !sawPart || lastUnit < 3 else { return nil }
    // A bare trailing number after units (e.g. "1m30") counts as seconds.
    total += v
    sawPart = true
  }
  return sawPart && total.isFinite ? total : nil
}
