import SegCore

/// The data a sample carries through the stages: the image (float32, C × H × W), its label
/// mask (one integer channel) and, once the weight stage ran, the weight map.
public struct Sample: Sendable, Equatable {
  public var image: Image
  public var mask: Image?
  public var weights: Image?

  public init(image: Image, mask: Image? = nil, weights: Image? = nil) {
    self.image = image
    self.mask = mask
    self.weights = weights
  }
}

/// Width, height and channels at some point in the pipeline.
public struct SampleShape: Sendable, Equatable, Codable {
  public var width: Int
  public var height: Int
  public var channels: Int

  public init(width: Int, height: Int, channels: Int) {
    self.width = width
    self.height = height
    self.channels = channels
  }
}

/// A number that is either fixed or drawn uniformly from a range for every sample.
public struct ParameterRange: Sendable, Equatable, Codable, CustomStringConvertible {
  public var lower: Double
  public var upper: Double

  public init(_ lower: Double, _ upper: Double) {
    precondition(lower <= upper, "range [\(lower), \(upper)] is empty")
    self.lower = lower
    self.upper = upper
  }

  public static func fixed(_ v: Double) -> ParameterRange { ParameterRange(v, v) }

  public var isFixed: Bool { lower == upper }

  /// A draw (no random number is consumed for a fixed value, so adding a range elsewhere
  /// does not shift the other draws of the stage — each stage has its own stream anyway).
  public func draw(_ rng: inout RandomStream) -> Double {
    isFixed ? lower : rng.uniform(lower, upper)
  }

  public var description: String { isFixed ? "\(lower)" : "[\(lower), \(upper)]" }

  /// A symmetric range [−v, v].
  public static func symmetric(_ v: Double) -> ParameterRange { ParameterRange(-abs(v), abs(v)) }
}

/// What a stage does to one sample, decided by its draw.
public enum StageAction: Sendable {
  /// The stage's probability said no (or its draw is the identity): nothing happens.
  case skipped
  /// A geometric transform: fused with its geometric neighbours into one resampling.
  case geometric(GeometricLayer)
  /// An intensity change of the image only; masks and weight maps are untouched.
  case intensity(@Sendable (inout Image) -> Void)
  /// Recompute the weight map from the mask as it is now.
  case weightMap(@Sendable (Image) -> Image)
}

/// A drawn stage: the action and the parameters actually drawn (for the sample's record).
public struct StageDraw: Sendable {
  public var action: StageAction
  /// The drawn parameters as JSON (`{"applied": false}` for skipped stages).
  public var parameters: JSONValue

  public init(action: StageAction, parameters: JSONValue) {
    self.action = action
    self.parameters = parameters
  }

  public static var skipped: StageDraw { StageDraw(action: .skipped, parameters: .object([("applied", false)])) }
}

/// A stage of a pipeline: draws its parameters once per sample from the sample's own stream
/// for this stage, and returns what to do (style rule 6: sample, then apply; the same draw
/// moves the image, the mask and the weight map).
public protocol AugmentationStage: Sendable {
  /// The key in pipeline files ("affine", "elastic", …).
  static var key: String { get }
  /// Probability that the stage applies to a sample.
  var probability: Double { get }
  /// Draws the parameters for a sample of the given shape.
  func draw(shape: SampleShape, rng: inout RandomStream) -> StageDraw
  /// The stage's settings for the canonical pipeline (and its hash).
  var settings: JSONValue { get }
}

extension AugmentationStage {
  /// The output shape after this stage for a given draw.
  public func outputShape(_ draw: StageDraw, input: SampleShape) -> SampleShape {
    if case .geometric(let layer) = draw.action {
      return SampleShape(width: layer.outputWidth, height: layer.outputHeight, channels: input.channels)
    }
    return input
  }
}

extension JSONValue {
  /// A number rounded to 6 significant digits for records (drawn angles and the like).
  public static func number(_ v: Double) -> JSONValue {
    guard v.isFinite, v != 0 else { return .double(v) }
    let magnitude = (log10(abs(v))).rounded(.down)
    let scale = pow(10, 5 - magnitude)
    return .double((v * scale).rounded() / scale)
  }
}

#if canImport(Glibc)
  import Glibc
#endif
