import SegCore
import SegIO

/// How `unet predict` writes class probabilities (K × H × W float32).
public enum ProbabilityFormat: String, Sendable, CaseIterable {
  /// `NAME.prob.tif`: one float32 page per class, deflate without a predictor, so every
  /// common reader opens it (`tifffile.imread` with no optional codecs installed gives
  /// K × H × W; Pillow reads each page with `seek`; Fiji opens a K-slice stack).
  case tif
  /// `NAME.prob.npy`: one K × H × W float32 array (`numpy.load`).
  case npy

  /// The file name suffix after the image's stem.
  public var suffix: String { ".prob." + rawValue }

  /// The file's bytes for probabilities `p` (K channels).
  public func encode(_ p: Image) throws(ImageIOError) -> [UInt8] {
    switch self {
    case .tif:
      let pages = (0..<p.channels).map { p.channel($0) }
      return try TIFFCodec.encode(pages, options: .init(compression: .deflate, predictor: false, rgb: false))
    case .npy:
      return NpyArray(dtype: .float32, shape: [p.channels, p.height, p.width], values: p.floatSamples()).encoded()
    }
  }
}
