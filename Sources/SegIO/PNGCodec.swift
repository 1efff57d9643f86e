import CCodecShims
import SegCore

/// PNG through libpng (via CCodecShims): every bit depth and colour type, exact 16-bit values.
public enum PNGCodec {
  /// Row filters for the encoder.
  public enum Filter: String, Sendable, CaseIterable {
    /// libpng's adaptive choice per row (all five filters tried): smallest files, slowest.
    case adaptive
    case none, sub, up, average, paeth

    var mask: Int32 {
      switch self {
      case .adaptive: 0
      case .none: 0x08
      case .sub: 0x10
      case .up: 0x20
      case .average: 0x40
      case .paeth: 0x80
      }
    }
  }

  /// Encoder settings.
  public struct EncodeOptions: Sendable {
    /// zlib level 0...9 (6 is zlib's and libpng's default).
    public var compressionLevel: Int
    public var filter: Filter
    /// Adam7 interlacing.
    public var interlace: Bool
    /// Write 1, 2 or 4 bits per sample (gray or palette images holding small values).
    public var bitDepth: Int?
    /// A palette (RGB triples, optional alpha): the image's single uint8 channel holds indices.
    public var palette: [(UInt8, UInt8, UInt8)]?
    public var paletteAlpha: [UInt8]?

    public init(
      compressionLevel: Int = 6, filter: Filter = .adaptive, interlace: Bool = false,
      bitDepth: Int? = nil, palette: [(UInt8, UInt8, UInt8)]? = nil, paletteAlpha: [UInt8]? = nil
    ) {
      self.compressionLevel = compressionLevel
      self.filter = filter
      self.interlace = interlace
      self.bitDepth = bitDepth
      self.palette = palette
      self.paletteAlpha = paletteAlpha
    }
  }

  static let colorModels = [0: "gray", 2: "rgb", 3: "palette", 4: "gray+alpha", 6: "rgba"]

  /// Decodes a PNG held in memory.
  public static func decode(
    _ bytes: [UInt8], options: DecodeOptions = DecodeOptions()
  ) throws(ImageIOError) -> DecodedImage {
    var message = [CChar](repeating: 0, count: 256)
    return try bytes.withUnsafeBufferPointer { (buf) throws(ImageIOError) -> DecodedImage in
      var reader: OpaquePointer?
      var info = CCodecShims_png_info()
      let status = CCodecShims_png_open(buf.baseAddress, buf.count, &reader, &info, &message, message.count)
      guard status == 0, let reader else { throw codecError(status, message) }
      defer { CCodecShims_png_close(reader) }
      let width = Int(info.width)
      let height = Int(info.height)
      try ImageDecoder.checkBudget(width: width, height: height, options: options)
      let indices: Int32 = options.palette == .indices ? 1 : 0
      var channels: Int32 = 0
      var sampleBytes: Int32 = 0
      CCodecShims_png_output_layout(reader, indices, &channels, &sampleBytes)
      let pixels = width * height
      let samples = pixels * Int(channels)
      func read(into buffer: UnsafeMutableRawBufferPointer) -> Int32 {
        CCodecShims_png_read(
          reader, indices, buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), buffer.count, &message,
          message.count)
      }
      let image: Image
      var rc: Int32 = 0
      if sampleBytes == 2 {
        let interleaved = [UInt16](unsafeUninitializedCapacity: samples) { out, count in
          rc = read(into: UnsafeMutableRawBufferPointer(out))
          count = rc == 0 ? samples : 0  // nothing kept on failure (no zero fill)
        }
        guard rc == 0 else { throw codecError(rc, message) }
        let planar = channels == 1 ? interleaved : interleaved.withUnsafeBufferPointer {
          deinterleave($0, channels: Int(channels), pixels: pixels, zero: 0)
        }
        image = Image(width: width, height: height, channels: Int(channels), pixels: planar)
      } else {
        let interleaved = [UInt8](unsafeUninitializedCapacity: samples) { out, count in
          rc = read(into: UnsafeMutableRawBufferPointer(out))
          count = rc == 0 ? samples : 0  // nothing kept on failure (no zero fill)
        }
        guard rc == 0 else { throw codecError(rc, message) }
        let planar = channels == 1 ? interleaved : interleaved.withUnsafeBufferPointer {
          deinterleave($0, channels: Int(channels), pixels: pixels, zero: 0)
        }
        image = Image(width: width, height: height, channels: Int(channels), pixels: planar)
      }
      var details: [String] = []
      if info.interlaced != 0 { details.append("interlaced") }
      if info.color_type == 3 {
        details.append("\(info.palette_size)-entry palette")
        details.append(options.palette == .indices ? "indices kept" : "expanded")
      }
      return DecodedImage(
        format: .png, pages: [image], bitsPerSample: Int(info.bit_depth),
        colorModel: colorModels[Int(info.color_type)] ?? "unknown", details: details)
    }
  }

  /// Encodes a uint8 or uint16 image with 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA)
  /// channels, or a one-channel uint8 image of palette indices.
  public static func encode(
    _ image: Image, options: EncodeOptions = EncodeOptions()
  ) throws(ImageIOError) -> [UInt8] {
    guard image.pixelType == .uint8 || image.pixelType == .uint16 else {
      throw ImageIOError(.cannotEncode, "PNG holds uint8 or uint16 samples, not \(image.pixelType.rawValue)")
    }
    guard (1...4).contains(image.channels) else {
      throw ImageIOError(.cannotEncode, "PNG holds 1 to 4 channels, not \(image.channels)")
    }
    guard (0...9).contains(options.compressionLevel) else {
      throw ImageIOError(.cannotEncode, "zlib level \(options.compressionLevel) is outside 0...9")
    }
    var bitDepth = image.pixelType == .uint16 ? 16 : 8
    var colorType: Int32 = [1: 0, 2: 4, 3: 2, 4: 6][image.channels] ?? 0
    var paletteRGB: [UInt8] = []
    var paletteAlpha: [UInt8]? = nil
    if let palette = options.palette {
      guard image.channels == 1, image.pixelType == .uint8, (1...256).contains(palette.count) else {
        throw ImageIOError(.cannotEncode, "a palette PNG needs one uint8 channel of indices and 1...256 colours")
      }
      colorType = 3
      paletteRGB = palette.flatMap { [$0.0, $0.1, $0.2] }
      paletteAlpha = options.paletteAlpha
      if let alpha = paletteAlpha, alpha.count != palette.count {
        throw ImageIOError(.cannotEncode, "palette alpha has \(alpha.count) entries for \(palette.count) colours")
      }
    }
    if let depth = options.bitDepth, depth != bitDepth {
      guard [1, 2, 4].contains(depth), image.pixelType == .uint8, image.channels == 1 else {
        throw ImageIOError(.cannotEncode, "bit depth \(depth) needs one uint8 channel (gray or palette)")
      }
      if let range = image.range, range.max >= Double(1 << depth) {
        throw ImageIOError(.cannotEncode, "value \(Int(range.max)) does not fit in \(depth) bits")
      }
      bitDepth = depth
    }
    let interleaved = image.interleavedBytes()
    var message = [CChar](repeating: 0, count: 256)
    var out: UnsafeMutablePointer<UInt8>?
    var size = 0
    let rc = paletteRGB.withUnsafeBufferPointer { rgb in
      (paletteAlpha ?? []).withUnsafeBufferPointer { alpha in
        CCodecShims_png_encode(
          interleaved, UInt32(image.width), UInt32(image.height), Int32(bitDepth), colorType,
          rgb.baseAddress, paletteAlpha == nil ? nil : alpha.baseAddress, Int32(options.palette?.count ?? 0),
          Int32(options.compressionLevel), options.filter.mask, options.interlace ? 1 : 0,
          &out, &size, &message, message.count)
      }
    }
    guard rc == 0, let out else { throw codecError(rc, message, prefix: "PNG encoder: ") }
    defer { CCodecShims_free(out) }
    return Array(UnsafeBufferPointer(start: out, count: size))
  }
}
