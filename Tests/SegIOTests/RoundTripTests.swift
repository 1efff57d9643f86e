import SegCore
import SegIO
import SegSynth
import SegTestSupport
import Testing

/// Encode → decode gives identical pixels, for every encoder and dtype.
@Suite struct RoundTripTests {
  static let cells = SyntheticCells(width: 37, height: 29, cells: 5, radius: 4...9, minArea: 5, seed: 7).make()

  static func gray8() -> Image { cells.image }
  static func gray16() -> Image {
    var v: [UInt16] = []
    for (i, x) in cells.image.labelSamples().enumerated() { v.append(UInt16(x) &* 251 &+ UInt16(i % 13)) }
    return Image(width: 37, height: 29, pixels: v)
  }
  static func rgb(_ channels: Int, sixteen: Bool) -> Image {
    let g = sixteen ? gray16() : gray8()
    var planes: [Image] = []
    for c in 0..<channels {
      let modulus: UInt32 = sixteen ? 65536 : 256
      var p: [UInt32] = []
      for (i, v) in g.labelSamples().enumerated() { p.append((v &+ UInt32(c * 40 + i % 5)) % modulus) }
      planes.append(sixteen ? Image(width: 37, height: 29, pixels: p.map { UInt16($0) })
                            : Image(width: 37, height: 29, pixels: p.map { UInt8($0) }))
    }
    return Image.stack(planes)
  }

  @Test(arguments: [1, 2, 3, 4], [false, true])
  func pngRoundTrip(channels: Int, sixteen: Bool) throws {
    let image = Self.rgb(channels, sixteen: sixteen)
    for filter in PNGCodec.Filter.allCases {
      let bytes = try PNGCodec.encode(image, options: .init(compressionLevel: 1, filter: filter))
      #expect(try PNGCodec.decode(bytes).image == image, "filter \(filter)")
    }
    let interlaced = try PNGCodec.encode(image, options: .init(interlace: true))
    #expect(try PNGCodec.decode(interlaced).image == image)
  }

  @Test(arguments: [1, 2, 4])
  func pngLowBitDepthRoundTripsThroughIndices(bits: Int) throws {
    let levels = UInt8((1 << bits) - 1)
    let image = Image(width: 37, height: 29, pixels: Self.gray8().labelSamples().map { UInt8($0) % (levels + 1) })
    var palette: [(UInt8, UInt8, UInt8)] = []
    for k in 0...Int(levels) {
      let g = UInt8(k * 2 % 256)
      palette.append((UInt8(k), g, UInt8(255 - k)))
    }
    let bytes = try PNGCodec.encode(image, options: .init(bitDepth: bits, palette: palette))
    #expect(try PNGCodec.decode(bytes, options: DecodeOptions(palette: .indices)).image == image)
    let gray = try PNGCodec.decode(try PNGCodec.encode(image, options: .init(bitDepth: bits))).image
    let scale = 255 / Int(levels)
    #expect(gray.labelSamples() == image.labelSamples().map { $0 * UInt32(scale) })
  }

  @Test func pngRefusesWhatItCannotHold() {
    #expect(throws: ImageIOError.self) { try PNGCodec.encode(Image(width: 2, height: 2, type: .float32)) }
    #expect(throws: ImageIOError.self) { try PNGCodec.encode(Image(width: 2, height: 2, channels: 5, type: .uint8)) }
    #expect(throws: ImageIOError.self) {
      try PNGCodec.encode(Image(width: 2, height: 1, pixels: [UInt8(0), 9]), options: .init(bitDepth: 2))
    }
  }

  static let tiffImages: [(String, Image)] = [
    ("u8", gray8()), ("u16", gray16()),
    ("u32", Image(width: 37, height: 29, pixels: gray16().labelSamples().map { $0 * 70_001 })),
    ("f32", Image(width: 37, height: 29, pixels: gray16().floatSamples().map { $0 / 7 - 1000.5 })),
    ("rgb8", rgb(3, sixteen: false)), ("rgba16", rgb(4, sixteen: true)),
  ]

  @Test(arguments: TIFFCodec.Compression.allCases)
  func tiffRoundTrip(compression: TIFFCodec.Compression) throws {
    for (name, image) in Self.tiffImages {
      for tiles in [false, true] {
        for separate in [false, true] {
          let options = TIFFCodec.EncodeOptions(
            compression: compression, predictor: compression == .lzw || compression == .deflate,
            tileSize: tiles ? (16, 16) : nil, rowsPerStrip: tiles ? nil : 6, separatePlanes: separate)
          let decoded = try TIFFCodec.decode(try TIFFCodec.encode([image], options: options))
          #expect(decoded.pages == [image], "\(name) \(compression) tiles \(tiles) separate \(separate)")
        }
      }
    }
  }

  @Test func tiffMultiPageWithMixedTypes() throws {
    let pages = Self.tiffImages.map(\.1)
    let decoded = try TIFFCodec.decode(try TIFFCodec.encode(pages, options: .init(compression: .deflate)))
    #expect(decoded.pages == pages)
  }

  @Test func jpegIsCloseAtHighQuality() throws {
    let gray = Self.gray8()
    let decoded = try JPEGCodec.decode(try JPEGCodec.encode(gray, quality: 100)).image
    let diff = maxAbsDifference(decoded.floatSamples(), gray.floatSamples())
    #expect(diff.value <= 3, "max difference \(diff.value)")
    for progressive in [false, true] {
      let rgb = Self.rgb(3, sixteen: false)
      let back = try JPEGCodec.decode(try JPEGCodec.encode(rgb, quality: 95, progressive: progressive))
      #expect(back.image.channels == 3 && back.image.width == 37 && back.image.height == 29)
      #expect(back.details.contains(progressive ? "progressive" : "baseline"))
    }
  }

  static let npyTypes: [NpyArray.DType] = NpyArray.DType.allCases

  @Test(arguments: npyTypes)
  func npyRoundTrip(dtype: NpyArray.DType) throws {
    for shape in [[0], [5], [3, 4], [2, 3, 4], [1, 1, 1, 1]] {
      let n = shape.reduce(1, *)
      var rng = RandomStream(seed: 3, path: [UInt64(shape.count)])
      let data = (0..<(n * dtype.size)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
      // float16 NaN payloads are preserved byte for byte too: we never convert on the way.
      let array = NpyArray(dtype: dtype, shape: shape, data: data)
      let bytes = array.encoded()
      #expect(try NpyArray.decode(bytes) == array)
      #expect((bytes.count - n * dtype.size) % 64 == 0, "header padded to 64 bytes")
    }
  }

  @Test func npyImageConversionsRoundTrip() throws {
    let gray = Self.gray8()
    for dtype in [NpyArray.DType.uint8, .uint16, .int32, .float16, .float32] {
      let array = NpyArray(image: gray, dtype: dtype)
      #expect(array.shape == [1, 29, 37])
      let back = try NpyArray.decode(array.encoded())
      #expect(back.doubles() == gray.floatSamples().map { Double($0) }, "\(dtype)")
    }
    // float16 rounds to nearest even
    let f = Image(width: 3, height: 1, pixels: [Float(1.0), 0.1, 65504])
    let half = NpyArray(image: f, dtype: .float16).floats()
    #expect(half[0] == 1 && half[2] == 65504 && abs(half[1] - 0.1) < 1e-4)
  }
}

/// Our .npy files are byte-identical to numpy's `np.save`, and we read what numpy writes.
@Suite struct NpyCompatibilityTests {
  static func hex(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var i = s.startIndex
    while i < s.endIndex {
      let j = s.index(i, offsetBy: 2)
      out.append(UInt8(s[i..<j], radix: 16) ?? 0)
      i = j
    }
    return out
  }

  @Test func headerMatchesNumpySave() {
    // np.save of np.arange(6, dtype='<f4').reshape(2, 3): 128-byte header, then the data.
    let array = NpyArray(dtype: .float32, shape: [2, 3], values: (0..<6).map { Float($0) })
    let bytes = array.encoded()
    #expect(bytes.count == 152)
    let header = Array(bytes[10..<128])
    let expected = Array("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }".utf8) + [UInt8](repeating: 0x20, count: 58) + [0x0A]
    #expect(header == expected)
    #expect(Array(bytes[0..<10]) == [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, 0x76, 0])
    let one = NpyArray(dtype: .uint16, shape: [3], values: [UInt16(1), 2, 3]).encoded()
    #expect(one.count == 134)
    #expect(String(decoding: one[10..<70], as: UTF8.self).hasPrefix("{'descr': '<u2', 'fortran_order': False, 'shape': (3,), }"))
  }

  @Test func readsBigEndianAndFortranOrder() throws {
    // np.save(np.arange(6, dtype='>i4').reshape(2, 3))
    let big = Self.hex(
      "934e554d5059010076007b276465736372273a20273e6934272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c2033292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a000000000000000100000002000000030000000400000005")
    let a = try NpyArray.decode(big)
    #expect(a.dtype == .int32 && a.shape == [2, 3])
    #expect(a.values(as: Int32.self) == [0, 1, 2, 3, 4, 5])
    // np.save(np.asfortranarray(np.arange(6, dtype='<u2').reshape(2, 3)))
    let fortran = Self.hex(
      "934e554d5059010076007b276465736372273a20273c7532272c2027666f727472616e5f6f72646572273a20547275652c20277368617065273a2028322c2033292c207d20202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a000003000100040002000500")
    let f = try NpyArray.decode(fortran)
    #expect(f.shape == [2, 3])
    #expect(f.values(as: UInt16.self) == [0, 1, 2, 3, 4, 5])
  }

  @Test(.enabled(if: TestPaths.shared != nil, "../shared is absent"))
  func readsTheWeightMapReferenceWrittenByNumpy() throws {
    let shared = try #require(TestPaths.shared)
    let array = try NpyArray.decode(try FileIO.read(shared + "/bench/reference/weightmap_ref_output.npy"))
    #expect(array.dtype == .float64 && array.shape == [512, 512])
    let v = array.doubles()
    #expect(abs(v.reduce(0, +) - 293247.0556) < 0.01)
  }

  @Test func rejectsBadHeaders() {
    let good = NpyArray(dtype: .uint8, shape: [2], values: [UInt8(1), 2]).encoded()
    var badDescr = good
    if let i = badDescr.firstIndex(of: UInt8(ascii: "|")) { badDescr[i + 1] = UInt8(ascii: "c") }
    #expect(throws: ImageIOError.self) { try NpyArray.decode(badDescr) }
    #expect(throws: ImageIOError.self) { try NpyArray.decode(Array(good.prefix(20))) }
    #expect(throws: ImageIOError.self) { try NpyArray.decode(Array(good.prefix(good.count - 1))) }
  }
}
