import SegCore
import SegIO
import SegTrain
import SegWeights

/// Scores of one predicted image against its labels.
public struct ImageEvaluation: Sendable {
  public var name: String
  public var classes: Int
  /// Dice and IoU per class (nil where the class occurs in neither image).
  public var dice: [Double?]
  public var iou: [Double?]
  public var pixelError: Double
  /// The ISBI 2012 Rand error (1 − foreground-restricted Rand F-score) of the cell
  /// segmentation: cells are the 4-connected components of the foreground.
  public var randError: Double

  /// Mean over the foreground classes.
  public var foregroundDice: Double? { SegmentationScores.mean(dice, classes: 1..<max(classes, 2)) }
  public var foregroundIoU: Double? { SegmentationScores.mean(iou, classes: 1..<max(classes, 2)) }
}

/// `unet eval`: predictions against labels, paired by file stem.
public enum Evaluator {
  /// Pairs the files of two folders (or two files) by stem.
  public static func pairs(predictions: String, labels: String) throws -> [(name: String, prediction: String, label: String)] {
    func files(_ p: String) throws -> [String] { FileIO.isDirectory(p) ? try ImageFiles.list(p) : [p] }
    let predicted = try files(predictions).filter { !$0.hasSuffix(".prob.tif") }
    let truth = try files(labels)
    if !FileIO.isDirectory(predictions) && !FileIO.isDirectory(labels) {
      return [(ImageFiles.stem(predictions), predictions, labels)]
    }
    var byStem: [String: String] = [:]
    for t in truth { byStem[ImageFiles.stem(t)] = t }
    var out: [(String, String, String)] = []
    for p in predicted {
      let stem = ImageFiles.stem(p)
      guard let t = byStem[stem] else {
        throw WorkflowError(.badInput, path: p, "has no label file with the same stem \"\(stem)\" in \(labels)")
      }
      out.append((stem, p, t))
    }
    guard !out.isEmpty else { throw WorkflowError(.badInput, path: predictions, "no prediction files") }
    return out
  }

  /// How label values are read.
  public enum Kind: String, Sendable, CaseIterable {
    /// Foreground (any non-zero value, e.g. instance ids or 255) against background.
    case binary
    /// Values are class ids.
    case classes
    /// binary when the prediction holds 0 and at most one other value, classes otherwise.
    case auto
  }

  static func isBinary(_ values: [UInt32]) -> Bool {
    var other: UInt32? = nil
    for v in values where v != 0 {
      if other == nil { other = v } else if other != v { return false }
    }
    return true
  }

  public static func evaluate(name: String, prediction: String, label: String, kind: Kind = .auto) throws -> ImageEvaluation {
    let p = try LabelMask.read(prediction)
    let t = try LabelMask.read(label)
    guard p.width == t.width && p.height == t.height else {
      throw WorkflowError(.badInput, path: prediction, "is \(p.width) × \(p.height), its labels \(label) are \(t.width) × \(t.height)")
    }
    let pv = p.labelSamples()
    let tv = t.labelSamples()
    let binary = kind == .binary || (kind == .auto && isBinary(pv))
    let pc = pv.map { binary ? ($0 == 0 ? Int32(0) : 1) : Int32(clamping: $0) }
    let tc = tv.map { binary ? ($0 == 0 ? Int32(0) : 1) : Int32(clamping: $0) }
    let k = Int(max(pc.max() ?? 0, tc.max() ?? 0)) + 1
    let scores = SegmentationMetrics.scores(predicted: pc, truth: tc, classes: max(k, 2))
    let rand = SegmentationMetrics.randError(
      truthMask: tc.map { $0 != 0 }, proposalMask: pc.map { $0 != 0 }, width: t.width, height: t.height)
    return ImageEvaluation(
      name: name, classes: max(k, 2), dice: scores.dice, iou: scores.iou, pixelError: scores.pixelError, randError: rand.error)
  }
}
