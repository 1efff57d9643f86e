import SegAugment
import SegCore
import SegWeights

/// Recomputes the U-Net weight map from the mask as it is at this point of the pipeline (after
/// the geometric stages), so d1 and d2 are true distances in the training sample. Later
/// geometric stages move the map with the image.
public struct WeightMapStage: AugmentationStage, Equatable {
  public static let key = "weight_map"
  public var parameters: WeightMapParameters
  /// `class_balance: dataset`: the engine fills in the frequencies from its first pass.
  public var datasetBalance: Bool
  public var probability: Double { 1 }

  public init(parameters: WeightMapParameters = .init(), datasetBalance: Bool = false) {
    self.parameters = parameters
    self.datasetBalance = datasetBalance
  }

  public func draw(shape: SampleShape, rng: inout RandomStream) -> StageDraw {
    let parameters = self.parameters
    return StageDraw(
      action: .weightMap { mask in WeightMap.compute(mask: mask, parameters: parameters) },
      parameters: .object([("applied", true), ("w0", .double(parameters.w0)), ("sigma", .double(parameters.sigma))]))
  }

  public var settings: JSONValue {
    let balance: JSONValue
    switch parameters.classBalance {
    case .none: balance = "none"
    case .image: balance = "image"
    case .dataset(let f): balance = .object([("dataset", .array(f.counts.map { .int(Int($0)) }))])
    case .fixed(let w): balance = .array(w.map { .double($0) })
    }
    return .object([
      ("w0", .double(parameters.w0)), ("sigma", .double(parameters.sigma)), ("class_balance", balance),
      ("border_region", .string(parameters.border.rawValue)), ("mask_kind", .string(parameters.maskKind.rawValue)),
      ("connectivity", .int(parameters.connectivity.rawValue)), ("classes", parameters.classCount.map { .int($0) } ?? .null),
    ])
  }
}
