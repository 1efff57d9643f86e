import SegCore
import SegIO
import SegSynth
import SegTestSupport
import Testing

/// Damaged input never crashes a decoder: every mutated file either decodes or throws an
/// ImageIOError. (A trap would kill the test process, which fails the run.)
@Suite struct RobustnessTests {
  /// The valid fixtures the mutations start from: one per decoder path family.
  static let sources = [
    "png/gray8.png", "png/gray16.png", "png/rgba8.png", "png/palette4.png", "png/gray8-interlaced.png",
    "jpeg/rgb-baseline.jpg", "jpeg/rgb-progressive.jpg", "jpeg/cmyk.jpg",
    "tiff/u16-lzw.tif", "tiff/u16-tiled.tif", "tiff/rgb8-separate-tiled.tif", "tiff/f32-deflate-predictor.tif",
    "tiff/multipage-u16.tif", "tiff/u8-packbits.tif", "npy/f32-chw.npy",
  ]

  /// Decodes, returning whether it succeeded; any non-ImageIOError is a test failure.
  static func tryDecode(_ bytes: [UInt8]) -> Bool {
    do {
      _ = try ImageDecoder.decode(bytes, options: DecodeOptions(maxPixels: 1 << 22))
      return true
    } catch {
      #expect(!error.message.isEmpty)
      #expect(!error.description.contains("\n"))
      return false
    }
  }

  @Test(arguments: sources)
  func truncationAtEveryLengthNeverCrashes(_ name: String) throws {
    let bytes = try FileIO.read(TestPaths.fixtures + "/" + name)
    var failures = 0
    // Every prefix length for the first 300 bytes (headers), then every 7th.
    var lengths = Array(0..<min(300, bytes.count))
    lengths += Array(stride(from: 300, to: bytes.count, by: 7))
    for n in lengths where !Self.tryDecode(Array(bytes.prefix(n))) { failures += 1 }
    #expect(failures > 0, "some truncations of \(name) must fail")
  }

  @Test(arguments: sources)
  func randomByteFlipsOver500SeedsNeverCrash(_ name: String) throws {
    let bytes = try FileIO.read(TestPaths.fixtures + "/" + name)
    var decoded = 0
    for seed in seeds(500) {
      var rng = RandomStream(seed: seed, path: [UInt64(bytes.count)])
      var mutated = bytes
      let flips = 1 + rng.nextInt(below: 8)
      for _ in 0..<flips {
        let i = rng.nextInt(below: mutated.count)
        mutated[i] ^= UInt8(truncatingIfNeeded: 1 + rng.nextInt(below: 255))
      }
      if Self.tryDecode(mutated) { decoded += 1 }
    }
    // Not a correctness claim about which flips decode; only that we got here without a trap.
    #expect(decoded <= 500)
  }

  @Test func pixelBudgetIsCheckedBeforeDecoding() throws {
    let path = TestPaths.fixtures + "/png/gray8.png"
    let ok = try ImageDecoder.read(path, options: DecodeOptions(maxPixels: 64 * 48))
    #expect(ok.image.width == 64)
    for file in ["png/gray8.png", "jpeg/gray-baseline.jpg", "tiff/u16.tif", "npy/u16-hw.npy"] {
      #expect {
        try ImageDecoder.read(TestPaths.fixtures + "/" + file, options: DecodeOptions(maxPixels: 64 * 48 - 1))
      } throws: { ($0 as? ImageIOError)?.code == .tooLarge }
    }
    // A multi-page TIFF counts every page.
    #expect {
      try ImageDecoder.read(TestPaths.fixtures + "/tiff/multipage-u16.tif", options: DecodeOptions(maxPixels: 64 * 48 * 2))
    } throws: { ($0 as? ImageIOError)?.code == .tooLarge }
  }

  @Test func missingFileAndFolderGiveUnreadable() {
    #expect { try ImageDecoder.read("/nonexistent/x.png") } throws: {
      guard let e = $0 as? ImageIOError else { return false }
      return e.code == .unreadable && e.description.hasPrefix("/nonexistent/x.png: cannot open")
    }
    #expect { try ImageDecoder.read(TestPaths.fixtures) } throws: { ($0 as? ImageIOError)?.code == .unreadable }
  }
}

/// The real ISBI 2012 slices in ../shared/data (skipped when it is absent).
@Suite struct ISBIDecodeTests {
  @Test(.enabled(if: TestPaths.isbi2012 != nil, "../shared/data/isbi2012 is absent"))
  func isbiSlicesDecodeTo512x512UInt8() throws {
    let root = try #require(TestPaths.isbi2012)
    let images = try ImageFiles.list(root + "/images")
    let labels = try ImageFiles.list(root + "/labels")
    #expect(images.count == 30 && labels.count == 30)
    for path in images + labels {
      let image = try ImageDecoder.read(path).image
      #expect(image.width == 512 && image.height == 512 && image.channels == 1 && image.pixelType == .uint8, "\(path)")
    }
    for path in labels {
      let values = Set(try ImageDecoder.read(path).image.labelSamples())
      #expect(values == [0, 255], "\(path) holds \(values.sorted())")
    }
  }
}
