import SegCore
import SegModel

/// How a pipeline sample becomes training samples (the `tiles:` section of a pipeline).
/// Without it, the whole sample is one training sample.
public struct TileSettings: Sendable, Equatable {
  public enum Mode: String, Sendable, CaseIterable {
    /// Cover the whole sample with output tiles (overlap-tile).
    case overlap
    /// `count` random crops per sample.
    case random
  }

  /// The size rules of the network the tiles are cut for.
  public var network: NetworkGeometry
  /// Network input size (pixels per side) and the label window it predicts.
  public var input: Int
  public var output: Int
  public var mode: Mode
  public var count: Int

  public init(network: NetworkGeometry, input: Int, output: Int, mode: Mode, count: Int) {
    self.network = network
    self.input = input
    self.output = output
    self.mode = mode
    self.count = count
  }

  /// Context each side of the label window.
  public var margin: Int { (input - output) / 2 }

  /// The canonical form (in the manifest; `architecture` only when it is not the U-Net, so the
  /// shard sets of U-Net pipelines keep their hashes).
  public var json: JSONValue {
    var fields: [(String, JSONValue)] = network.architecture == .unet ? [] : [("architecture", .string(network.architecture.rawValue))]
    fields += [
      ("depth", .int(network.depth)), ("padding", .string(network.padding.rawValue)), ("input", .int(input)),
      ("output", .int(output)), ("mode", .string(mode.rawValue)), ("count", .int(count)),
    ]
    return .object(fields)
  }
}

/// A training sample cut from a pipeline sample.
public struct TrainingTile: Sendable {
  public var image: Image
  public var mask: Image?
  public var weights: Image?
  /// The label window's top-left in the pipeline sample, and the input window.
  public var x: Int
  public var y: Int
  /// Where the tile lies (`x`, `y`, `output` and `input` windows), for the sample's record;
  /// `.null` when the whole sample is the tile.
  public var record: JSONValue
}

/// Cuts pipeline samples into training tiles as the `tiles:` section says.
public struct Tiler: Sendable {
  public let settings: TileSettings?
  public let seed: UInt64

  public init(settings: TileSettings?, seed: UInt64) {
    self.settings = settings
    self.seed = seed
  }

  /// The tiles of one pipeline sample: the image, its label planes (mask and weight map, cut
  /// at the label window), and which sample of which source it is (random windows are drawn
  /// from a stream keyed by both, so they do not depend on the order samples are made in).
  public func tiles(image: Image, mask: Image?, weights: Image?, source: Int, sampleInSource: Int) -> [TrainingTile] {
    guard let settings else {
      return [TrainingTile(image: image, mask: mask, weights: weights, x: 0, y: 0, record: .null)]
    }
    let w = image.width
    let h = image.height
    let out = settings.output
    let margin = settings.margin
    var windows: [(Int, Int)] = []
    switch settings.mode {
    case .overlap:
      windows = OverlapTilePlan(imageWidth: w, imageHeight: h, tileOutput: out, margin: margin).tiles.map { ($0.x, $0.y) }
    case .random:
      var rng = RandomStream(seed: seed, path: [UInt64(source), UInt64(sampleInSource), 0x711E])
      for _ in 0..<settings.count {
        let x = w >= out ? rng.nextInt(below: w - out + 1) : (w - out) / 2
        let y = h >= out ? rng.nextInt(below: h - out + 1) : (h - out) / 2
        windows.append((x, y))
      }
    }
    return windows.map { (x, y) in
      let tileImage = OverlapTilePlan.window(image, x: x - margin, y: y - margin, width: settings.input, height: settings.input)
      let tileMask = mask.map { OverlapTilePlan.window($0, x: x, y: y, width: out, height: out) }
      let tileWeights = weights.map { OverlapTilePlan.window($0, x: x, y: y, width: out, height: out) }
      let record: JSONValue = .object([
        ("x", .int(x)), ("y", .int(y)), ("output", .array([.int(x), .int(y), .int(out), .int(out)])),
        ("input", .array([.int(x - margin), .int(y - margin), .int(settings.input), .int(settings.input)])),
      ])
      return TrainingTile(image: tileImage, mask: tileMask, weights: tileWeights, x: x, y: y, record: record)
    }
  }
}
