import SegCore

/// One tile of an overlap-tile cover: the output window it predicts, and the input window
/// (the output window grown by the context margin) it reads from the mirror-padded image.
public struct Tile: Sendable, Equatable, Codable {
  /// Top-left of the output window in image coordinates.
  public var x: Int
  public var y: Int
  /// Output window size (pixels of the image this tile predicts; may extend past the image
  /// edge for images smaller than one tile, and is then cropped when stitching).
  public var outputWidth: Int
  public var outputHeight: Int
  /// Context each side.
  public var margin: Int

  public var inputX: Int { x - margin }
  public var inputY: Int { y - margin }
  public var inputWidth: Int { outputWidth + 2 * margin }
  public var inputHeight: Int { outputHeight + 2 * margin }
}

/// The overlap-tile strategy (Ronneberger et al. 2015, Fig. 2): cover an image with output
/// tiles, each cut with its context from the mirror-padded image, so that stitching the
/// network's outputs gives a prediction of the whole image with full context everywhere.
///
/// Tiles sit on a grid with stride = output size; where the image size is not a multiple, the
/// last row/column of tiles is shifted back to end at the image edge (it overlaps its
/// neighbour), so no tile predicts pixels outside the image unless the image is smaller than
/// one tile.
public struct OverlapTilePlan: Sendable, Equatable, Codable {
  public var imageWidth: Int
  public var imageHeight: Int
  public var tileOutput: Int
  public var margin: Int
  public var tiles: [Tile]

  /// - Parameters:
  ///   - tileOutput: output tile size (pixels per side).
  ///   - margin: context per side ((network input − output) / 2; for a same-padding network,
  ///     any context you want to give it).
  public init(imageWidth: Int, imageHeight: Int, tileOutput: Int, margin: Int) {
    precondition(imageWidth > 0 && imageHeight > 0 && tileOutput > 0 && margin >= 0, "bad overlap-tile plan")
    self.imageWidth = imageWidth
    self.imageHeight = imageHeight
    self.tileOutput = tileOutput
    self.margin = margin
    func starts(_ n: Int) -> [Int] {
      if n <= tileOutput { return [0] }
      var s = Array(stride(from: 0, to: n - tileOutput, by: tileOutput))
      s.append(n - tileOutput)
      return s
    }
    var tiles: [Tile] = []
    for y in starts(imageHeight) {
      for x in starts(imageWidth) {
        tiles.append(Tile(x: x, y: y, outputWidth: tileOutput, outputHeight: tileOutput, margin: margin))
      }
    }
    self.tiles = tiles
  }

  /// The input window of `tile` cut from `image` (any channels and type), mirror-padded
  /// (numpy `reflect`) where it leaves the image.
  public func input(_ tile: Tile, of image: Image) -> Image {
    OverlapTilePlan.window(image, x: tile.inputX, y: tile.inputY, width: tile.inputWidth, height: tile.inputHeight)
  }

  /// A window of `image` at (x, y) of the given size, reflecting outside the image.
  public static func window(_ image: Image, x: Int, y: Int, width: Int, height: Int) -> Image {
    // Pad just enough, then crop: padding is cheap and exact (numpy reflect for any margin).
    let left = max(0, -x)
    let top = max(0, -y)
    let right = max(0, x + width - image.width)
    let bottom = max(0, y + height - image.height)
    let padded = left + top + right + bottom > 0 ? Pad.reflect(image, top: top, bottom: bottom, left: left, right: right) : image
    return crop(padded, x: x + left, y: y + top, width: width, height: height)
  }

  /// A crop fully inside `image`.
  public static func crop(_ image: Image, x: Int, y: Int, width: Int, height: Int) -> Image {
    precondition(x >= 0 && y >= 0 && x + width <= image.width && y + height <= image.height, "crop outside the image")
    if x == 0 && y == 0 && width == image.width && height == image.height { return image }
    func cut<T>(_ a: [T]) -> [T] {
      var out: [T] = []
      out.reserveCapacity(width * height * image.channels)
      for c in 0..<image.channels {
        for row in y..<(y + height) {
          let start = (c * image.height + row) * image.width + x
          out.append(contentsOf: a[start..<(start + width)])
        }
      }
      return out
    }
    let s: PixelStorage
    switch image.storage {
    case .uint8(let a): s = .uint8(cut(a))
    case .uint16(let a): s = .uint16(cut(a))
    case .uint32(let a): s = .uint32(cut(a))
    case .float32(let a): s = .float32(cut(a))
    }
    return Image(width: width, height: height, channels: image.channels, storage: s)
  }

  /// Assembles per-tile outputs (each `tileOutput` square, any channels, float32) into a
  /// prediction of the whole image. Later tiles overwrite the overlap of earlier ones (both
  /// saw full context there).
  public func stitch(_ outputs: [Image]) -> Image {
    precondition(outputs.count == tiles.count, "\(outputs.count) outputs for \(tiles.count) tiles")
    let channels = outputs.first?.channels ?? 1
    var out = [Float](repeating: 0, count: channels * imageWidth * imageHeight)
    for (tile, image) in zip(tiles, outputs) {
      precondition(image.width == tile.outputWidth && image.height == tile.outputHeight && image.channels == channels,
                   "tile output has the wrong shape")
      let f = image.floatSamples()
      for c in 0..<channels {
        for row in 0..<tile.outputHeight where tile.y + row < imageHeight {
          for col in 0..<tile.outputWidth where tile.x + col < imageWidth {
            out[(c * imageHeight + tile.y + row) * imageWidth + tile.x + col] =
              f[(c * tile.outputHeight + row) * tile.outputWidth + col]
          }
        }
      }
    }
    return Image(width: imageWidth, height: imageHeight, channels: channels, pixels: out)
  }
}
