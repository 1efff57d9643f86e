import SegCore

/// The container formats we read, recognised by their first bytes (never by file extension).
public enum ImageFormat: String, Sendable, Codable, CaseIterable {
  case png, jpeg, tiff, npy

  /// The format whose signature starts `bytes`, or nil.
  public static func sniff<C: Collection<UInt8>>(_ bytes: C) -> ImageFormat? {
    let head = Array(bytes.prefix(8))
    if head.count >= 8 && head == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] { return .png }
    if head.count >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF { return .jpeg }
    if head.count >= 4 {
      if head[0] == 0x49 && head[1] == 0x49 && (head[2] == 42 || head[2] == 43) && head[3] == 0 { return .tiff }
      if head[0] == 0x4D && head[1] == 0x4D && head[2] == 0 && (head[3] == 42 || head[3] == 43) { return .tiff }
    }
    if head.count >= 6 && head[0] == 0x93 && Array(head[1..<6]) == Array("NUMPY".utf8) { return .npy }
    return nil
  }

  /// File name extensions that `unet info DIR` and the pipeline globs treat as images.
  public static let knownExtensions: Set<String> = [
    "png", "jpg", "jpeg", "tif", "tiff", "npy",
  ]
}

/// What to do with palette (indexed-colour) images.
public enum PaletteMode: String, Sendable, Codable, CaseIterable {
  /// Expand each index to its RGB(A) colour (for images).
  case expand
  /// Keep the index as the pixel value (for label masks stored as palette PNGs, as in VOC).
  case indices
}

/// Limits and choices for decoding.
public struct DecodeOptions: Sendable, Equatable {
  /// The largest number of pixels (width × height summed over pages) a file may declare;
  /// larger files are refused before anything is allocated. Default 2^28 (16384 × 16384).
  public var maxPixels: Int
  /// Palette handling; images want `.expand`, label masks `.indices`.
  public var palette: PaletteMode

  public static let defaultMaxPixels = 1 << 28

  public init(maxPixels: Int = DecodeOptions.defaultMaxPixels, palette: PaletteMode = .expand) {
    self.maxPixels = maxPixels
    self.palette = palette
  }
}

/// A decoded file: one image per page (PNG and JPEG have one), and what the file declared.
public struct DecodedImage: Sendable, Equatable {
  public var format: ImageFormat
  public var pages: [Image]
  /// Bits per sample as stored in the file (1, 2, 4, 8, 16, 32 or 64).
  public var bitsPerSample: Int
  /// The file's colour model: gray, gray+alpha, rgb, rgba, palette, cmyk, ycck, multi.
  public var colorModel: String
  /// Format details worth showing (interlace, progressive, compression, tiling, planes).
  public var details: [String]
  /// Non-fatal messages from the library (unknown tags and the like).
  public var warnings: [String]

  public init(
    format: ImageFormat, pages: [Image], bitsPerSample: Int, colorModel: String,
    details: [String] = [], warnings: [String] = []
  ) {
    self.format = format
    self.pages = pages
    self.bitsPerSample = bitsPerSample
    self.colorModel = colorModel
    self.details = details
    self.warnings = warnings
  }

  /// The first page (every decoded file has at least one).
  public var image: Image { pages[0] }
}

/// Decodes PNG, JPEG, TIFF and .npy files from their bytes.
public enum ImageDecoder {
  /// Decodes `bytes`, choosing the decoder by signature.
  public static func decode(
    _ bytes: [UInt8], options: DecodeOptions = DecodeOptions()
  ) throws(ImageIOError) -> DecodedImage {
    guard let format = ImageFormat.sniff(bytes) else {
      if bytes.isEmpty { throw ImageIOError(.truncated, "empty file") }
      throw ImageIOError(.unknownFormat, "not a PNG, JPEG, TIFF or .npy file (unknown signature)")
    }
    switch format {
    case .png: return try PNGCodec.decode(bytes, options: options)
    case .jpeg: return try JPEGCodec.decode(bytes, options: options)
    case .tiff: return try TIFFCodec.decode(bytes, options: options)
    case .npy: return try NpyArray.decodeImage(bytes, options: options)
    }
  }

  /// Reads and decodes the file at `path`; every error names the path.
  public static func read(
    _ path: String, options: DecodeOptions = DecodeOptions()
  ) throws(ImageIOError) -> DecodedImage {
    let bytes: [UInt8]
    do {
      bytes = try FileIO.read(path)
    } catch {
      throw ImageIOError(.unreadable, path: path, error.message)
    }
    do {
      return try decode(bytes, options: options)
    } catch {
      throw error.at(path)
    }
  }

  /// Throws `.tooLarge` when `pixels` exceeds the budget.
  static func checkBudget(
    width: Int, height: Int, pages: Int = 1, options: DecodeOptions
  ) throws(ImageIOError) {
    let (area, o1) = width.multipliedReportingOverflow(by: height)
    let (total, o2) = area.multipliedReportingOverflow(by: max(pages, 1))
    if o1 || o2 || total > options.maxPixels {
      let what = pages > 1 ? "\(width) × \(height) × \(pages) pages" : "\(width) × \(height)"
      throw ImageIOError(
        .tooLarge, "declared size \(what) exceeds the pixel budget of \(options.maxPixels) pixels",
        hint: "raise it with --max-pixels if the file is genuine")
    }
  }
}

extension ImageDecoder {
  /// Bytes of decoded samples the pixel budget allows: 16 per pixel (four float32 channels).
  static func byteBudget(_ options: DecodeOptions) -> Int {
    options.maxPixels.multipliedReportingOverflow(by: 16).overflow ? Int.max : options.maxPixels * 16
  }

  /// Throws `.tooLarge` when decoded samples of `bytes` bytes exceed the budget's bytes (files
  /// with many channels: the pixel count alone does not bound their memory).
  static func checkByteBudget(_ bytes: Int, what: String, options: DecodeOptions) throws(ImageIOError) {
    let limit = byteBudget(options)
    if bytes > limit {
      throw ImageIOError(
        .tooLarge, "declared size \(what) needs \(bytes == Int.max ? "more than \(limit)" : "\(bytes)") bytes, "
          + "above the \(limit) bytes the pixel budget of \(options.maxPixels) pixels allows (16 per pixel)",
        hint: "raise it with --max-pixels if the file is genuine")
    }
  }
}

/// The text of a NUL-terminated C message buffer.
func cMessage(_ buffer: [CChar]) -> String {
  let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
  let text = String(decoding: bytes, as: UTF8.self)
  return text.isEmpty ? "unknown error" : text
}

/// Maps a shim status to an error code.
func codecError(_ status: Int32, _ message: [CChar], prefix: String = "") -> ImageIOError {
  let code: ImageIOError.Code
  switch status {
  case 2: code = .unsupported
  case 3: code = .tooLarge
  case 4: code = .truncated
  default: code = .corrupt
  }
  var text = cMessage(message)
  // Messages that say "end of file"/"premature end" mean truncation whatever the status.
  let lower = text.lowercased()
  let truncatedWords = ["unexpected end", "premature end", "truncated", "read error"]
  let isTruncated = code == .corrupt && truncatedWords.contains { lower.contains($0) }
  if !prefix.isEmpty { text = prefix + text }
  return ImageIOError(isTruncated ? .truncated : code, text)
}

/// Planar samples from interleaved ones (H × W × C → C × H × W).
func deinterleave<T>(_ interleaved: UnsafeBufferPointer<T>, channels: Int, pixels: Int, zero: T) -> [T] {
  if channels == 1 { return Array(interleaved.prefix(pixels)) }
  return [T](unsafeUninitializedCapacity: pixels * channels) { out, count in
    for c in 0..<channels {
      let base = c * pixels
      var j = c
      for i in 0..<pixels {
        out.initializeElement(at: base + i, to: interleaved[j])
        j += channels
      }
    }
    count = pixels * channels
  }
}
