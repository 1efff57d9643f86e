import CCodecShims
import SegCore

/// TIFF through libtiff (via CCodecShims): classic and BigTIFF; 1/8/16/32-bit unsigned,
/// signed and float samples, 64-bit float; stripped or tiled; any compression libtiff decodes
/// (none, LZW, Deflate, PackBits, JPEG, …); contiguous or separate planes; every page.
public enum TIFFCodec {
  /// Compression schemes the encoder writes.
  public enum Compression: String, Sendable, CaseIterable {
    case none, lzw, deflate, packbits

    var tag: Int32 {
      switch self {
      case .none: 1
      case .lzw: 5
      case .deflate: 8
      case .packbits: 32773
      }
    }
  }

  /// Encoder settings.
  public struct EncodeOptions: Sendable {
    public var compression: Compression
    /// Horizontal differencing (integer samples) or floating-point prediction (float samples)
    /// for LZW and Deflate.
    public var predictor: Bool
    /// Tile size (multiples of 16), or nil for strips.
    public var tileSize: (width: Int, height: Int)?
    /// Rows per strip (nil = the whole image in one strip).
    public var rowsPerStrip: Int?
    /// Separate planes (PlanarConfiguration 2) instead of interleaved samples.
    public var separatePlanes: Bool
    /// Photometric RGB for 3- and 4-channel images (otherwise min-is-black with extra samples).
    public var rgb: Bool

    public init(
      compression: Compression = .none, predictor: Bool = false,
      tileSize: (width: Int, height: Int)? = nil, rowsPerStrip: Int? = nil,
      separatePlanes: Bool = false, rgb: Bool = true
    ) {
      self.compression = compression
      self.predictor = predictor
      self.tileSize = tileSize
      self.rowsPerStrip = rowsPerStrip
      self.separatePlanes = separatePlanes
      self.rgb = rgb
    }
  }

  static let compressionNames: [Int32: String] = [
    1: "uncompressed", 5: "LZW", 7: "JPEG", 8: "Deflate", 32946: "Deflate", 32773: "PackBits",
    34925: "LZMA", 50000: "ZSTD", 50001: "WebP", 3: "CCITT G3", 4: "CCITT G4", 2: "CCITT RLE",
  ]

  /// Decodes every page of a TIFF held in memory.
  public static func decode(
    _ bytes: [UInt8], options: DecodeOptions = DecodeOptions()
  ) throws(ImageIOError) -> DecodedImage {
    try checkFirstDirectory(bytes)
    var message = [CChar](repeating: 0, count: 512)
    return try bytes.withUnsafeBufferPointer { (buf) throws(ImageIOError) -> DecodedImage in
      var reader: OpaquePointer?
      var pageCount: Int32 = 0
      let maxAlloc = UInt64(max(options.maxPixels, 1)) * 16
      let status = CCodecShims_tiff_open(
        buf.baseAddress, buf.count, maxAlloc, &reader, &pageCount, &message, message.count)
      guard status == 0, let reader else { throw codecError(status, message) }
      defer { CCodecShims_tiff_close(reader) }

      var infos: [CCodecShims_tiff_page] = []
      var total = 0
      var totalBytes = 0
      for index in 0..<Int(pageCount) {
        var page = CCodecShims_tiff_page()
        let rc = CCodecShims_tiff_page_info(reader, Int32(index), &page, &message, message.count)
        guard rc == 0 else { throw codecError(rc, message, prefix: "page \(index): ") }
        let (area, overflow) = Int(page.width).multipliedReportingOverflow(by: Int(page.height))
        total = overflow ? Int.max : total.addingReportingOverflow(area).partialValue
        if overflow || total > options.maxPixels || total < 0 {
          try ImageDecoder.checkBudget(
            width: Int(page.width), height: Int(page.height), pages: Int(pageCount), options: options)
        }
        // Many channels multiply the memory: the budget's bytes count every sample.
        let sampleBytes = max(1, Int(page.bits_per_sample) / 8) * max(1, Int(page.samples_per_pixel))
        let (bytes, o1) = area.multipliedReportingOverflow(by: sampleBytes)
        let (sum, o2) = totalBytes.addingReportingOverflow(bytes)
        totalBytes = o1 || o2 ? Int.max : sum
        try ImageDecoder.checkByteBudget(
          totalBytes, what: "\(page.width) × \(page.height) × \(page.samples_per_pixel) channels of \(page.bits_per_sample) bits",
          options: options)
        infos.append(page)
      }
      var pages: [Image] = []
      for (index, page) in infos.enumerated() {
        if index > 0 {
          var again = CCodecShims_tiff_page()
          let rc = CCodecShims_tiff_page_info(reader, Int32(index), &again, &message, message.count)
          guard rc == 0 else { throw codecError(rc, message, prefix: "page \(index): ") }
        } else if pageCount > 1 {
          var again = CCodecShims_tiff_page()
          _ = CCodecShims_tiff_page_info(reader, 0, &again, &message, message.count)
        }
        do throws(ImageIOError) {
          pages.append(try decodePage(reader, page, options: options))
        } catch {
          throw pageCount > 1 ? ImageIOError(error.code, "page \(index): \(error.message)") : error
        }
      }
      let first = infos[0]
      let warnings = String(cString: CCodecShims_tiff_warnings(reader))
      return DecodedImage(
        format: .tiff, pages: pages, bitsPerSample: Int(first.bits_per_sample),
        colorModel: colorModel(first), details: details(first),
        warnings: warnings.isEmpty ? [] : [warnings])
    }
  }

  /// A file cut short usually loses its first directory (libtiff writes it after the pixel
  /// data): say "truncated" rather than libtiff's "cannot read directory count".
  static func checkFirstDirectory(_ b: [UInt8]) throws(ImageIOError) {
    guard b.count >= 8 else { throw ImageIOError(.truncated, "TIFF header is cut off (\(b.count) bytes)") }
    let little = b[0] == 0x49
    func read(_ at: Int, _ n: Int) -> UInt64 {
      var v: UInt64 = 0
      for k in 0..<n { v |= UInt64(b[at + k]) << (8 * UInt64(little ? k : n - 1 - k)) }
      return v
    }
    let big = read(2, 2) == 43
    if big && b.count < 16 { throw ImageIOError(.truncated, "BigTIFF header is cut off (\(b.count) bytes)") }
    let offset = big ? read(8, 8) : read(4, 4)
    if offset >= UInt64(b.count) {
      throw ImageIOError(
        .truncated, "the first directory (at byte \(offset)) lies past the end of the file (\(b.count) bytes)")
    }
  }

  static func colorModel(_ p: CCodecShims_tiff_page) -> String {
    switch (p.photometric, p.samples_per_pixel) {
    case (3, _): return "palette"
    case (2, 3): return "rgb"
    case (2, 4): return "rgba"
    case (5, 4): return "cmyk"
    case (0, 1), (1, 1): return "gray"
    case (0, 2), (1, 2): return p.extra_alpha != 0 ? "gray+alpha" : "multi"
    default: return "multi"
    }
  }

  static func details(_ p: CCodecShims_tiff_page) -> [String] {
    var d = [compressionNames[p.compression] ?? "compression \(p.compression)"]
    d.append(p.tiled != 0 ? "tiled \(p.tile_width)×\(p.tile_height)" : "strips of \(p.rows_per_strip) rows")
    if p.planar_config == 2 && p.samples_per_pixel > 1 { d.append("separate planes") }
    if p.sample_format == 2 { d.append("signed samples as float32") }
    if p.bits_per_sample == 64 { d.append("float64 samples as float32") }
    return d
  }

  static func decodePage(
    _ reader: OpaquePointer, _ page: CCodecShims_tiff_page, options: DecodeOptions
  ) throws(ImageIOError) -> Image {
    let width = Int(page.width)
    let height = Int(page.height)
    let spp = Int(page.samples_per_pixel)
    let bps = Int(page.bits_per_sample)
    let format = Int(page.sample_format)
    let plane = width * height
    guard spp >= 1 && spp <= 1024 else {
      throw ImageIOError(.unsupported, "\(spp) samples per pixel")
    }
    guard [1, 8, 16, 32, 64].contains(bps) else {
      throw ImageIOError(.unsupported, "\(bps)-bit samples (8, 16, 32 and 64 are supported)")
    }
    guard [1, 2, 3].contains(format) else {
      throw ImageIOError(.unsupported, "sample format \(format)")
    }
    if bps == 1 && spp != 1 {
      throw ImageIOError(.unsupported, "1-bit samples with \(spp) channels")
    }
    if page.photometric == 6 {
      throw ImageIOError(.unsupported, "subsampled YCbCr without JPEG compression")
    }
    if (format == 3 && bps != 16 && bps != 32 && bps != 64) || (format != 3 && bps == 64) {
      throw ImageIOError(.unsupported, "\(bps)-bit \(format == 3 ? "float" : "integer") samples")
    }
    let bytes = bps == 1 ? 1 : bps / 8
    let planeBytes = plane * bytes
    var message = [CChar](repeating: 0, count: 512)
    /// The samples decoded straight into an array of their type (no zero fill, no copy; on
    /// failure nothing is touched beyond what the decoder wrote, then the error is thrown).
    func samples<T>(_: T.Type) throws(ImageIOError) -> [T] {
      let count = planeBytes * spp / MemoryLayout<T>.stride
      var rc: Int32 = 0
      let values = [T](unsafeUninitializedCapacity: count) { out, initialized in
        let raw = UnsafeMutableRawBufferPointer(out)
        rc = CCodecShims_tiff_read_planar(
          reader, raw.baseAddress?.assumingMemoryBound(to: UInt8.self), planeBytes, &message, message.count)
        initialized = rc == 0 ? count : 0
      }
      guard rc == 0 else { throw codecError(rc, message) }
      return values
    }
    var image: Image
    switch (bps, format) {
    case (1, _), (8, 1):
      image = Image(width: width, height: height, channels: spp, pixels: try samples(UInt8.self))
    case (8, 2):
      image = Image(width: width, height: height, channels: spp, pixels: try samples(Int8.self).map { Float($0) })
    case (16, 1):
      image = Image(width: width, height: height, channels: spp, pixels: try samples(UInt16.self))
    case (16, 2):
      image = Image(width: width, height: height, channels: spp, pixels: try samples(Int16.self).map { Float($0) })
    case (16, 3):
      image = Image(width: width, height: height, channels: spp, pixels: try samples(UInt16.self).map { halfToFloat($0) })
    case (32, 1):
      image = Image(width: width, height: height, channels: spp, pixels: try samples(UInt32.self))
    case (32, 2):
      image = Image(width: width, height: height, channels: spp, pixels: try samples(Int32.self).map { Float($0) })
    case (32, 3):
      image = Image(width: width, height: height, channels: spp, pixels: try samples(Float.self))
    default:  // (64, 3)
      image = Image(width: width, height: height, channels: spp, pixels: try samples(Double.self).map { Float($0) })
    }
    if page.photometric == 3 && options.palette == .expand && spp == 1 && image.pixelType.isInteger {
      image = try expandPalette(reader, image, bits: bps)
    }
    return image
  }

  static func expandPalette(_ reader: OpaquePointer, _ indices: Image, bits: Int) throws(ImageIOError) -> Image {
    let entries = 1 << min(bits, 16)
    var map = [UInt16](repeating: 0, count: entries * 3)
    guard CCodecShims_tiff_colormap(reader, &map, entries) == 0 else {
      throw ImageIOError(.corrupt, "palette image without a colour map")
    }
    let ids = indices.labelSamples()
    let n = ids.count
    var rgb = [UInt8](repeating: 0, count: n * 3)
    for c in 0..<3 {
      for i in 0..<n {
        let k = min(Int(ids[i]), entries - 1)
        rgb[c * n + i] = UInt8(map[c * entries + k] >> 8)
      }
    }
    return Image(width: indices.width, height: indices.height, channels: 3, pixels: rgb)
  }

  /// Encodes pages (uint8, uint16, uint32 or float32; each page may differ) as one TIFF.
  public static func encode(
    _ pages: [Image], options: EncodeOptions = EncodeOptions()
  ) throws(ImageIOError) -> [UInt8] {
    guard !pages.isEmpty else { throw ImageIOError(.cannotEncode, "no pages to write") }
    if let tile = options.tileSize, tile.width % 16 != 0 || tile.height % 16 != 0 || tile.width <= 0 || tile.height <= 0 {
      throw ImageIOError(.cannotEncode, "tile size \(tile.width)×\(tile.height) is not a positive multiple of 16")
    }
    var message = [CChar](repeating: 0, count: 512)
    var writer: OpaquePointer?
    var rc = CCodecShims_tiff_writer_create(&writer, &message, message.count)
    guard rc == 0, let writer else { throw codecError(rc, message, prefix: "TIFF encoder: ") }
    for (index, image) in pages.enumerated() {
      var spec = CCodecShims_tiff_page_spec()
      spec.width = UInt32(image.width)
      spec.height = UInt32(image.height)
      spec.samples_per_pixel = Int32(image.channels)
      spec.bits_per_sample = Int32(image.pixelType.byteWidth * 8)
      spec.sample_format = image.pixelType == .float32 ? 3 : 1
      spec.planar_config = options.separatePlanes ? 2 : 1
      spec.compression = options.compression.tag
      spec.predictor = options.predictor ? (image.pixelType == .float32 ? 3 : 2) : 1
      spec.tiled = options.tileSize == nil ? 0 : 1
      spec.tile_width = UInt32(options.tileSize?.width ?? 0)
      spec.tile_height = UInt32(options.tileSize?.height ?? 0)
      spec.rows_per_strip = UInt32(options.rowsPerStrip ?? 0)
      spec.photometric = options.rgb && (image.channels == 3 || image.channels == 4) ? 2 : 1
      let bytes = image.planarBytes()
      rc = bytes.withUnsafeBufferPointer {
        CCodecShims_tiff_write_page(
          writer, &spec, $0.baseAddress, image.planeSize * image.pixelType.byteWidth,
          Int32(index), Int32(pages.count), &message, message.count)
      }
      if rc != 0 {
        CCodecShims_tiff_writer_discard(writer)
        throw codecError(rc, message, prefix: "TIFF encoder: ")
      }
    }
    var out: UnsafeMutablePointer<UInt8>?
    var size = 0
    rc = CCodecShims_tiff_writer_finish(writer, &out, &size, &message, message.count)
    guard rc == 0, let out else { throw codecError(rc, message, prefix: "TIFF encoder: ") }
    defer { CCodecShims_free(out) }
    return Array(UnsafeBufferPointer(start: out, count: size))
  }
}

/// IEEE 754 half precision bits → Float (exact: every half is a float).
@inline(__always)
func halfToFloat(_ h: UInt16) -> Float { Float(Float16(bitPattern: h)) }

/// Float → IEEE 754 half bits, rounding to nearest even (overflow → ±inf, NaN kept).
@inline(__always)
func floatToHalf(_ f: Float) -> UInt16 { Float16(f).bitPattern }
