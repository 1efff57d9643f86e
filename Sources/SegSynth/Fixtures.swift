import SegCore
import SegIO

/// One file of the repository's `fixtures/` folder: its bytes, and what decoding it must give.
public struct Fixture: Sendable {
  /// How close a decode must come to `expected`.
  public enum Tolerance: Sendable, Equatable {
    case exact
    /// Lossy formats: the mean absolute difference per sample may not exceed this.
    case meanAbsolute(Double)
  }

  /// Path relative to the fixtures folder.
  public var path: String
  public var bytes: [UInt8]
  /// Every page the decoder must return (empty for corrupt files).
  public var expectedPages: [Image]
  public var tolerance: Tolerance
  /// Decode options the expectation is for.
  public var options: DecodeOptions
  /// For corrupt files: the error code decoding must throw.
  public var expectedError: ImageIOError.Code?
  /// What the file exercises (printed by `unet fixtures`).
  public var note: String

  public var expected: Image? { expectedPages.first }
}

/// The fixture set: small images made by our own generator, covering every decoder path
/// (PNG bit depths and colour types, JPEG baseline/progressive/gray/RGB/CMYK, TIFF sample
/// types, compressions, strips/tiles, planar layouts and pages, .npy), a small cell data set
/// for the default pipeline, and corrupt files. `unet fixtures` writes them; the tests
/// decode the committed files and compare with the expectation regenerated here.
public enum FixtureSet {
  /// The seed every fixture derives from.
  public static let seed: UInt64 = 2015

  /// Builds every fixture in memory.
  public static func all() throws(ImageIOError) -> [Fixture] {
    var out: [Fixture] = []
    let (gray, labels) = SyntheticCells(width: 64, height: 48, cells: 6, radius: 6...14, minArea: 12, seed: seed).make()
    let gray16 = SyntheticCells(width: 64, height: 48, cells: 6, radius: 6...14, minArea: 12, seed: seed).make(bits: 16).image
    let rgb = colorize(gray, labels: labels)
    let w = gray.width
    let h = gray.height

    func add(_ path: String, _ bytes: [UInt8], _ pages: [Image], _ note: String,
             tolerance: Fixture.Tolerance = .exact, options: DecodeOptions = DecodeOptions()) {
      out.append(Fixture(path: path, bytes: bytes, expectedPages: pages, tolerance: tolerance,
                         options: options, expectedError: nil, note: note))
    }

    // MARK: PNG
    for bits in [1, 2, 4] {
      let levels = (1 << bits) - 1
      // 1 bit: a threshold; 2 and 4 bits: the gray levels quantised.
      let small = Image(width: w, height: h, pixels: gray.labelSamples().map {
        bits == 1 ? ($0 > 100 ? 1 : 0) : UInt8(Int($0) * levels / 255)
      })
      let scaled = Image(width: w, height: h, pixels: small.labelSamples().map { UInt8(Int($0) * 255 / levels) })
      add("png/gray\(bits).png", try PNGCodec.encode(small, options: .init(bitDepth: bits)), [scaled],
          "\(bits)-bit gray, scaled to 0...255")
    }
    add("png/gray8.png", try PNGCodec.encode(gray), [gray], "8-bit gray")
    add("png/gray8-interlaced.png", try PNGCodec.encode(gray, options: .init(interlace: true)), [gray], "8-bit gray, Adam7")
    add("png/gray16.png", try PNGCodec.encode(gray16), [gray16], "16-bit gray, exact values")
    let alpha = Image(width: w, height: h, pixels: labels.labelSamples().map { $0 == 0 ? UInt8(128) : 255 })
    let grayAlpha = Image.stack([gray, alpha])
    add("png/graya8.png", try PNGCodec.encode(grayAlpha), [grayAlpha], "8-bit gray + alpha")
    add("png/rgb8.png", try PNGCodec.encode(rgb), [rgb], "8-bit RGB")
    let rgba = Image.stack([rgb, alpha])
    add("png/rgba8.png", try PNGCodec.encode(rgba), [rgba], "8-bit RGBA")
    var rgb16Samples: [UInt16] = []
    for (i, v) in rgb.labelSamples().enumerated() { rgb16Samples.append(UInt16(v) * 257 &+ UInt16(i % 7)) }
    let rgb16 = Image(width: w, height: h, channels: 3, pixels: rgb16Samples)
    add("png/rgb16.png", try PNGCodec.encode(rgb16), [rgb16], "16-bit RGB")
    let indices = Image(width: w, height: h, pixels: labels.labelSamples().map { UInt8(min($0, 15)) })
    var palette: [(UInt8, UInt8, UInt8)] = []
    for k in 0..<16 {
      let r = UInt8(k * 16)
      let g = UInt8(255 - k * 16)
      let b = UInt8((k * 97) % 256)
      palette.append((r, g, b))
    }
    let expanded = expand(indices, palette)
    for bits in [4, 8] {
      let bytes = try PNGCodec.encode(indices, options: .init(bitDepth: bits == 8 ? nil : bits, palette: palette))
      add("png/palette\(bits).png", bytes, [expanded], "\(bits)-bit palette, expanded to RGB")
      add("png/palette\(bits).png", bytes, [indices], "\(bits)-bit palette, indices kept",
          options: DecodeOptions(palette: .indices))
    }

    // MARK: JPEG
    add("jpeg/gray-baseline.jpg", try JPEGCodec.encode(gray, quality: 95), [gray], "baseline gray",
        tolerance: .meanAbsolute(3))
    add("jpeg/rgb-baseline.jpg", try JPEGCodec.encode(rgb, quality: 95), [rgb], "baseline RGB (YCbCr)",
        tolerance: .meanAbsolute(8))
    add("jpeg/rgb-progressive.jpg", try JPEGCodec.encode(rgb, quality: 95, progressive: true), [rgb],
        "progressive RGB", tolerance: .meanAbsolute(8))
    add("jpeg/cmyk.jpg", try JPEGCodec.encode(cmyk(rgb), quality: 95), [rgb], "CMYK (Adobe), converted to RGB",
        tolerance: .meanAbsolute(8))

    // MARK: TIFF
    let u32Labels = Image(width: w, height: h, pixels: labels.labelSamples().map { $0 == 0 ? 0 : $0 + 70_000 })
    let floats = Image(width: w, height: h, pixels: gray.floatSamples().map { ($0 - 128) / 37.5 })
    add("tiff/u8.tif", try TIFFCodec.encode([gray]), [gray], "8-bit, uncompressed, one strip")
    add("tiff/u16.tif", try TIFFCodec.encode([gray16], options: .init(rowsPerStrip: 7)), [gray16], "16-bit, strips of 7 rows")
    add("tiff/u16-lzw.tif", try TIFFCodec.encode([gray16], options: .init(compression: .lzw, predictor: true)), [gray16],
        "16-bit, LZW with horizontal predictor")
    add("tiff/u16-deflate.tif", try TIFFCodec.encode([gray16], options: .init(compression: .deflate, rowsPerStrip: 16)), [gray16],
        "16-bit, Deflate")
    add("tiff/u8-packbits.tif", try TIFFCodec.encode([gray], options: .init(compression: .packbits)), [gray], "8-bit, PackBits")
    add("tiff/u16-tiled.tif", try TIFFCodec.encode([gray16], options: .init(compression: .deflate, tileSize: (32, 16))), [gray16],
        "16-bit, 32×16 tiles (edge tiles partial), Deflate")
    add("tiff/u32-labels.tif", try TIFFCodec.encode([u32Labels], options: .init(compression: .deflate)), [u32Labels],
        "32-bit unsigned instance labels with ids above 65535")
    add("tiff/f32.tif", try TIFFCodec.encode([floats]), [floats], "32-bit float, negative values")
    add("tiff/f32-deflate-predictor.tif", try TIFFCodec.encode([floats], options: .init(compression: .deflate, predictor: true)),
        [floats], "32-bit float, Deflate with floating-point predictor")
    add("tiff/rgb8-contig.tif", try TIFFCodec.encode([rgb], options: .init(compression: .lzw)), [rgb], "8-bit RGB, interleaved, LZW")
    add("tiff/rgb8-separate.tif", try TIFFCodec.encode([rgb], options: .init(rowsPerStrip: 10, separatePlanes: true)), [rgb],
        "8-bit RGB, separate planes")
    add("tiff/rgb8-separate-tiled.tif",
        try TIFFCodec.encode([rgb], options: .init(compression: .packbits, tileSize: (16, 16), separatePlanes: true)), [rgb],
        "8-bit RGB, separate planes, 16×16 tiles, PackBits")
    let stack = (0..<3).map { k in
      SyntheticCells(width: w, height: h, cells: 6, radius: 6...14, minArea: 12, seed: seed + UInt64(k) + 1).make(bits: 16).image
    }
    add("tiff/multipage-u16.tif", try TIFFCodec.encode(stack, options: .init(compression: .lzw)), stack,
        "three 16-bit pages (a stack)")
    let modalities = Image.stack([floats, Image(width: w, height: h, pixels: floats.floatSamples().map { $0 * $0 })])
    add("tiff/f32-2channel.tif", try TIFFCodec.encode([modalities], options: .init(rgb: false)), [modalities],
        "two float channels (modalities) in one page")

    // MARK: .npy
    add("npy/f32-chw.npy", NpyArray(image: rgb.toFloat32(scale: 1.0 / 255), dtype: .float32).encoded(),
        [rgb.toFloat32(scale: 1.0 / 255)], "float32 C × H × W")
    add("npy/u16-hw.npy", NpyArray(image: labels, dtype: .uint16, squeeze: true).encoded(), [labels], "uint16 H × W labels")

    // MARK: the cell data set the default pipeline uses
    for k in 0..<4 {
      let (img, lab) = SyntheticCells(width: 96, height: 96, cells: 14, radius: 7...16, minArea: 20,
                                      seed: seed + 100 + UInt64(k)).make()
      let name = "cells_\(k)"
      add("cells/images/\(name).png", try PNGCodec.encode(img), [img], "pipeline data set: image")
      add("cells/labels/\(name).png", try PNGCodec.encode(lab), [lab], "pipeline data set: 16-bit instance labels")
    }

    // MARK: corrupt files
    func bad(_ path: String, _ bytes: [UInt8], _ code: ImageIOError.Code, _ note: String) {
      out.append(Fixture(path: path, bytes: bytes, expectedPages: [], tolerance: .exact,
                         options: DecodeOptions(), expectedError: code, note: note))
    }
    let png = try PNGCodec.encode(gray)
    bad("corrupt/truncated.png", Array(png.prefix(png.count * 6 / 10)), .truncated, "PNG cut at 60%")
    bad("corrupt/bad-crc.png", corruptIDATCRC(png), .corrupt, "PNG with a wrong IDAT CRC")
    bad("corrupt/empty.png", [], .truncated, "zero bytes")
    bad("corrupt/huge.png", hugePNG(), .tooLarge, "PNG header claiming 100000 × 100000")
    let jpeg = try JPEGCodec.encode(rgb, quality: 95)
    bad("corrupt/truncated.jpg", Array(jpeg.prefix(jpeg.count / 2)), .truncated, "JPEG cut at 50%")
    bad("corrupt/not-a-tiff.tif", Array("This is a text file with a .tif name.\n".utf8), .unknownFormat,
        "text with a .tif extension")
    bad("corrupt/bad-ifd.tif", badIFDTIFF(), .corrupt, "TIFF whose directory lacks the image size")
    bad("corrupt/huge.tif", hugeTIFF(), .tooLarge, "TIFF claiming 100000 × 100000 pixels")
    let tiff = try TIFFCodec.encode([gray16])
    bad("corrupt/truncated.tif", Array(tiff.prefix(tiff.count / 2)), .truncated, "TIFF cut at 50% (its directory is lost)")
    bad("corrupt/truncated-strip.tif", truncatedStripTIFF(), .truncated, "TIFF whose strip runs past the end of the file")
    let npy = NpyArray(image: gray, dtype: .uint8).encoded()
    bad("corrupt/truncated.npy", Array(npy.prefix(npy.count - 100)), .truncated, ".npy with data cut short")
    return out
  }

  /// A colour version of a gray cell image: R = gray, G = gray tinted by cell id, B = inverse.
  static func colorize(_ gray: Image, labels: Image) -> Image {
    let g = gray.labelSamples()
    let l = labels.labelSamples()
    let r = g.map { UInt8($0) }
    let gg = zip(g, l).map { UInt8(($0 / 2 + ($1 * 37) % 128) & 0xFF) }
    let b = g.map { UInt8(255 - $0) }
    return Image(width: gray.width, height: gray.height, channels: 3, pixels: r + gg + b)
  }

  static func expand(_ indices: Image, _ palette: [(UInt8, UInt8, UInt8)]) -> Image {
    let ids = indices.labelSamples().map(Int.init)
    let r = ids.map { palette[$0].0 }
    let g = ids.map { palette[$0].1 }
    let b = ids.map { palette[$0].2 }
    return Image(width: indices.width, height: indices.height, channels: 3, pixels: r + g + b)
  }

  /// CMYK ink values (4 planes) whose RGB conversion is `rgb`.
  static func cmyk(_ rgb: Image) -> Image {
    let n = rgb.planeSize
    let s = rgb.labelSamples().map(Int.init)
    var out = [UInt8](repeating: 0, count: n * 4)
    for i in 0..<n {
      let r = s[i]
      let g = s[n + i]
      let b = s[2 * n + i]
      let k = 255 - max(r, g, b)
      let denom = max(255 - k, 1)
      out[i] = UInt8(255 - r * 255 / denom)
      out[n + i] = UInt8(255 - g * 255 / denom)
      out[2 * n + i] = UInt8(255 - b * 255 / denom)
      out[3 * n + i] = UInt8(k)
    }
    return Image(width: rgb.width, height: rgb.height, channels: 4, pixels: out)
  }

  /// The PNG with the CRC of its first IDAT chunk inverted.
  static func corruptIDATCRC(_ png: [UInt8]) -> [UInt8] {
    var bytes = png
    var offset = 8
    while offset + 12 <= bytes.count {
      let length = Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
      let type = String(decoding: bytes[(offset + 4)..<(offset + 8)], as: UTF8.self)
      let crc = offset + 8 + length
      if type == "IDAT" && crc + 4 <= bytes.count {
        for i in crc..<(crc + 4) { bytes[i] ^= 0xFF }
        return bytes
      }
      offset = crc + 4
    }
    return bytes
  }

  /// A syntactically valid PNG signature + IHDR (correct CRC) declaring 100000 × 100000.
  static func hugePNG() -> [UInt8] {
    var ihdr: [UInt8] = Array("IHDR".utf8)
    for v: UInt32 in [100_000, 100_000] { ihdr += bigEndian(v) }
    ihdr += [8, 0, 0, 0, 0]
    var bytes: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    bytes += bigEndian(13)
    bytes += ihdr
    bytes += bigEndian(crc32(ihdr))
    let idat: [UInt8] = Array("IDAT".utf8) + [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]
    bytes += bigEndian(UInt32(idat.count - 4)) + idat + bigEndian(crc32(idat))
    let iend: [UInt8] = Array("IEND".utf8)
    bytes += bigEndian(0) + iend + bigEndian(crc32(iend))
    return bytes
  }

  /// A little-endian TIFF whose only directory declares 100000 × 100000 8-bit gray pixels in
  /// one strip of 16 bytes.
  static func hugeTIFF() -> [UInt8] {
    var b: [UInt8] = [0x49, 0x49, 42, 0, 8, 0, 0, 0]
    // (tag, type, count, value): type 3 = SHORT, 4 = LONG
    let entries: [(UInt16, UInt16, UInt32, UInt32)] = [
      (256, 4, 1, 100_000), (257, 4, 1, 100_000), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
      (273, 4, 1, 8 + 2 + 9 * 12 + 4), (277, 3, 1, 1), (278, 4, 1, 100_000), (279, 4, 1, 16),
    ]
    b += littleEndian16(UInt16(entries.count))
    for (tag, type, count, value) in entries {
      b += littleEndian16(tag) + littleEndian16(type) + littleEndian32(count) + littleEndian32(value)
    }
    b += littleEndian32(0)
    b += [UInt8](repeating: 0x55, count: 16)
    return b
  }

  /// A little-endian TIFF with one directory of two entries and no image width or length.
  static func badIFDTIFF() -> [UInt8] {
    var b: [UInt8] = [0x49, 0x49, 42, 0, 8, 0, 0, 0]
    b += littleEndian16(2)
    b += littleEndian16(258) + littleEndian16(3) + littleEndian32(1) + littleEndian32(8)
    b += littleEndian16(262) + littleEndian16(3) + littleEndian32(1) + littleEndian32(1)
    b += littleEndian32(0)
    return b
  }

  /// A valid directory for 16 × 16 8-bit pixels whose single strip (256 bytes) is cut to 100.
  static func truncatedStripTIFF() -> [UInt8] {
    var b: [UInt8] = [0x49, 0x49, 42, 0, 8, 0, 0, 0]
    let entries: [(UInt16, UInt16, UInt32, UInt32)] = [
      (256, 4, 1, 16), (257, 4, 1, 16), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
      (273, 4, 1, 8 + 2 + 9 * 12 + 4), (277, 3, 1, 1), (278, 4, 1, 16), (279, 4, 1, 256),
    ]
    b += littleEndian16(UInt16(entries.count))
    for (tag, type, count, value) in entries {
      b += littleEndian16(tag) + littleEndian16(type) + littleEndian32(count) + littleEndian32(value)
    }
    b += littleEndian32(0)
    b += [UInt8](repeating: 0x80, count: 100)
    return b
  }

  static func bigEndian(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
  static func littleEndian32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8(v >> 24)] }
  static func littleEndian16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
}

/// CRC-32 (ISO 3309, as PNG and zlib use), bitwise: fixtures are tiny.
public func crc32<C: Collection<UInt8>>(_ bytes: C) -> UInt32 {
  var c: UInt32 = 0xFFFF_FFFF
  for b in bytes {
    c ^= UInt32(b)
    for _ in 0..<8 { c = (c >> 1) ^ (0xEDB8_8320 & (0 &- (c & 1))) }
  }
  return ~c
}
