import SegAugment
import SegCache
import SegCore
import SegModel
import SegTiling

extension TileSettings {
  /// The `tiles:` section of a pipeline file.
  static func parse(_ node: ConfigNode) throws(PipelineError) -> TileSettings {
    let m = try ConfigMapping(node, allowed: ["network", "input", "output", "context", "mode", "count"])
    var geometry = NetworkGeometry()
    if let n = m["network"] {
      let nm = try ConfigMapping(n, allowed: ["architecture", "depth", "padding"])
      if let a = nm["architecture"] {
        geometry.architecture = try a.choice(Architecture.self)
        if nm["padding"] == nil { geometry.padding = .same }
      }
      if let d = nm["depth"] {
        geometry.depth = try d.int()
        try d.check((1...8).contains(geometry.depth), "depth must be 1...8")
      }
      if let p = nm["padding"] { geometry.padding = try p.choice(NetworkPadding.self) }
      if let problem = geometry.problem { throw (nm["padding"] ?? n).error(.outOfRange, problem) }
    }
    let mode = try m["mode"]?.choice(Mode.self) ?? .random
    let count = try m["count"]?.int() ?? 1
    try (m["count"] ?? node).check(count >= 1 && count <= 10_000, "count must be 1...10000")
    if mode == .overlap, let c = m["count"] { throw c.error(.unknownKey, "count applies to mode random only") }
    var input: Int
    var output: Int
    switch (m["input"], m["output"]) {
    case (let i?, nil):
      input = try i.int()
      guard let o = geometry.outputSize(forInput: input) else {
        let near = geometry.nearestInput(forOutputAtLeast: max(1, geometry.outputSize(forInput: input) ?? input - 2 * geometry.contextMargin))
        throw i.error(
          .outOfRange, "\(input) is not a legal input size for \(geometry.summary)",
          hint: "try \(near.input) (output \(near.output))")
      }
      output = o
    case (nil, let o?):
      output = try o.int()
      try o.check(output >= 1 && output <= 100_000, "output must be 1...100000")
      if let i = geometry.inputSize(forOutput: output) {
        input = i
      } else {
        let near = geometry.nearestInput(forOutputAtLeast: output)
        throw o.error(
          .outOfRange, "no input size gives exactly \(output) for \(geometry.summary)",
          hint: "use output \(near.output) (input \(near.input))")
      }
    case (.some(let i), .some):
      throw i.error(.unknownKey, "give input or output, not both (the other follows from the network)")
    case (nil, nil):
      throw node.error(.missingKey, "give input or output (tile size in pixels)")
    }
    if let c = m["context"] {
      guard geometry.padding == .same else { throw c.error(.unknownKey, "context applies to same-padding networks") }
      let context = try c.int()
      try c.check(context >= 0 && context <= 10_000, "context must be 0...10000 pixels")
      // A same network sees input = output + 2·context; the input must stay legal.
      input = output + 2 * context
      guard geometry.isLegalInput(input) else {
        throw c.error(.outOfRange, "output + 2 × context = \(input) is not divisible by \(1 << geometry.depth)")
      }
    }
    return TileSettings(network: geometry, input: input, output: output, mode: mode, count: count)
  }
}

/// How training samples are stored (the `shards:` section).
public struct ShardOutputSettings: Sendable, Equatable {
  public var imageDType: String
  public var imageScale: Double
  /// nil = the smallest of uint8/uint16/uint32 that holds the source masks' largest value
  /// (decided per shard set from the first sample).
  public var maskDType: String?
  public var weightDType: String
  public var samplesPerShard: Int
  public var maxBytes: Int?

  public init(
    imageDType: String = "float32", imageScale: Double? = nil, maskDType: String? = nil, weightDType: String = "float32",
    samplesPerShard: Int = 16, maxBytes: Int? = nil
  ) {
    self.imageDType = imageDType
    self.imageScale = imageScale ?? SampleCodec.defaultScale(imageDType)
    self.maskDType = maskDType
    self.weightDType = weightDType
    self.samplesPerShard = samplesPerShard
    self.maxBytes = maxBytes
  }

  public var json: JSONValue {
    .object([
      ("image_dtype", .string(imageDType)), ("image_scale", .double(imageScale)), ("mask_dtype", maskDType.map { .string($0) } ?? "auto"),
      ("weight_dtype", .string(weightDType)), ("samples_per_shard", .int(samplesPerShard)),
      ("max_bytes", maxBytes.map { .int($0) } ?? .null),
    ])
  }

  static func parse(_ node: ConfigNode) throws(PipelineError) -> ShardOutputSettings {
    let m = try ConfigMapping(node, allowed: ["image_dtype", "image_scale", "mask_dtype", "weight_dtype", "samples_per_shard", "max_bytes"])
    func dtype(_ key: String, _ allowed: [String], _ fallback: String?) throws(PipelineError) -> String? {
      guard let n = m[key] else { return fallback }
      let v = try n.string()
      guard allowed.contains(v) else { throw n.error(.outOfRange, "\"\(v)\" is not one of \(allowed.joined(separator: ", "))") }
      return v
    }
    let image = try dtype("image_dtype", SampleCodec.imageDTypes, "float32") ?? "float32"
    var scale: Double? = nil
    if let n = m["image_scale"] {
      guard image == "uint8" || image == "uint16" else { throw n.error(.unknownKey, "image_scale applies to uint8 and uint16 images") }
      scale = try n.double()
      try n.check(scale ?? 0 > 0, "image_scale must be positive")
    }
    var mask = try dtype("mask_dtype", SampleCodec.maskDTypes + ["auto"], "auto")
    if mask == "auto" { mask = nil }
    let weight = try dtype("weight_dtype", SampleCodec.weightDTypes, "float32") ?? "float32"
    let perShard = try m["samples_per_shard"]?.int() ?? 16
    try (m["samples_per_shard"] ?? node).check(perShard >= 1 && perShard <= 1_000_000, "samples_per_shard must be 1...1000000")
    var maxBytes: Int? = nil
    if let n = m["max_bytes"] {
      maxBytes = try n.int()
      try n.check((maxBytes ?? 0) >= 4096, "max_bytes must be at least 4096")
    }
    return ShardOutputSettings(
      imageDType: image, imageScale: scale, maskDType: mask, weightDType: weight, samplesPerShard: perShard, maxBytes: maxBytes)
  }
}
