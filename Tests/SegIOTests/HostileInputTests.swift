import SegCore
import SegIO
import SegTestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Files made to hurt: decompression bombs, headers that claim absurd sizes, inputs the fuzzers
/// found. Each is refused with its typed error (the limit named where there is one), never a
/// trap, and before the memory it asks for is allocated.
@Suite struct HostileInputTests {
  static func npy(_ header: String, data: [UInt8] = []) -> [UInt8] {
    var h = header
    h += String(repeating: " ", count: (64 - (10 + h.utf8.count + 1) % 64) % 64) + "\n"
    let n = h.utf8.count
    return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(n & 0xFF), UInt8(n >> 8)] + Array(h.utf8) + data
  }

  static func code(_ bytes: [UInt8], _ options: DecodeOptions = DecodeOptions()) -> ImageIOError? {
    do {
      _ = try ImageDecoder.decode(bytes, options: options)
      return nil
    } catch {
      #expect(!error.description.contains("\n"))
      return error
    }
  }

  @Test func npyImagesWithAnEmptyAxisAreRefused() {
    // Found by the npy fuzzer: a C × H × W array with C = 0 trapped in Image's initialiser.
    for shape in ["(0, 3, 4)", "(3, 0, 4)", "(2, 4, 0)", "(0, 5)"] {
      let e = Self.code(Self.npy("{'descr': '<u2', 'fortran_order': False, 'shape': \(shape), }"))
      #expect(e?.code == .unsupported && e?.message.contains("holds no pixels") == true, "\(shape): \(String(describing: e))")
    }
  }

  @Test func npyShapesWhoseProductOverflowAreCorrupt() {
    let bytes = Self.npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }")
    #expect {
      try NpyArray.decode(bytes)
    } throws: { error in
      guard let e = error as? ImageIOError else { return false }
      return e.code == .corrupt && e.message.contains("too large")
    }
  }

  @Test func npyHeadersNestedDeeplyAreCorruptNotAStackOverflow() {
    let deep = String(repeating: "(", count: 20_000)
    let e = Self.code(Self.npy("{'descr': '<f4', 'fortran_order': False, 'shape': \(deep), }"))
    #expect(e?.code == .corrupt)
  }

  @Test func tinyPNGClaiming10To5SquaredIsRefusedNamingTheBudget() {
    let header = HostileFiles.png(width: 100_000, height: 100_000, zeros: 16)
    #expect(header.count < 100)
    let e = Self.code(header)
    #expect(e?.code == .tooLarge)
    #expect(e?.message.contains("100000 × 100000") == true && e?.message.contains("268435456") == true)
    #expect(e?.hint?.contains("--max-pixels") == true)
  }

  @Test func deflateBombIsRefusedBeforeInflatingAndTheBudgetRaisesIt() throws {
    // 17000 × 17000 zeros: 289 MB of pixels from a 1.8 MB file.
    let bomb = HostileFiles.png(width: 17_000, height: 17_000)
    #expect(bomb.count < 2_000_000)
    let e = Self.code(bomb)
    #expect(e?.code == .tooLarge && e?.message.contains("17000 × 17000") == true)
    // The same kind of file, small: refused one pixel under its size, decoded at its size.
    let small = HostileFiles.png(width: 1500, height: 1000)
    #expect(Self.code(small, DecodeOptions(maxPixels: 1500 * 1000 - 1))?.code == .tooLarge)
    let decoded = try ImageDecoder.decode(small, options: DecodeOptions(maxPixels: 1500 * 1000))
    #expect(decoded.image.width == 1500 && decoded.image.height == 1000)
    #expect(decoded.image.labelSamples().allSatisfy { $0 == 0 })
  }

  /// The high-water mark of this process's memory, in bytes.
  static func peakMemory() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss * 1024
  }

  @Test func aChunkClaimingGigabytesIsTruncationNotAnAllocation() {
    // Found by the PNG fuzzer: a 61-byte file whose tEXt chunk claims 1.4 GB made libpng
    // allocate and touch 1.4 GB before it found the end of the file.
    let before = Self.peakMemory()
    let bytes = HostileFiles.pngHeader(width: 64, height: 64) + HostileFiles.be32(0x5757_5757) + Array("tEXtWWWW".utf8)
    let e = Self.code(bytes)
    #expect(e?.code == .truncated && e?.message.contains("unexpected end of file: chunk tEXt") == true && e?.message.contains("1465341783") == true)
    #expect(Self.peakMemory() - before < 512 << 20, "the claimed size was allocated")
  }

  @Test func aCompressedTextBombInflatesAtMost16MB() throws {
    // A zTXt chunk of 400 kB that inflates to 64 MB: libpng stops at its chunk limit, warns,
    // and the image still decodes.
    let before = Self.peakMemory()
    let text = HostileFiles.chunk("zTXt", Array("Comment".utf8) + [0, 0] + HostileFiles.zlibZeros(64 << 20))
    let decoded = try ImageDecoder.decode(HostileFiles.png(width: 8, height: 8, before: text))
    #expect(decoded.image.width == 8 && decoded.image.labelSamples().allSatisfy { $0 == 0 })
    #expect(Self.peakMemory() - before < 48 << 20)
  }

  @Test func tiffClaimingManyChannelsIsRefusedByTheByteBudget() {
    // 2048 × 2048 is within the pixel budget, but 1024 float32 channels are 16 GiB.
    let bomb = HostileFiles.tiff(width: 2048, height: 2048, channels: 1024, bitsPerSample: 32, float: true, stripBytes: 64)
    #expect(bomb.count < 300)
    let e = Self.code(bomb)
    #expect(e?.code == .tooLarge, "\(String(describing: e))")
    #expect(e?.message.contains("1024 channels") == true && e?.message.contains("4294967296") == true)
    #expect(e?.hint?.contains("--max-pixels") == true)
  }

  @Test func tiffTilesFarLargerThanTheImageAreRefused() throws {
    // Found by the TIFF fuzzer: a 1 kB file whose tiles claim 2^20 × 2^17 pixels made the shim
    // ask malloc for 134 GB (which fails, or worse, succeeds).
    let bytes = try FileIO.read(TestPaths.repositoryRoot + "/Tests/Fuzz/regressions/tiff/tiles-134GB")
    let e = Self.code(bytes, DecodeOptions(maxPixels: 1 << 20))
    #expect(e?.code == .corrupt && e?.message.contains("far larger than the") == true, "\(String(describing: e))")
  }

  @Test func tiffClaimingMoreThanItHoldsFailsAsTruncated() {
    // Within every budget, but the strip is 64 bytes: an error, not an image of zeros.
    let short = HostileFiles.tiff(width: 4096, height: 4096, channels: 1, bitsPerSample: 16, float: false, stripBytes: 64)
    let e = Self.code(short)
    #expect(e?.code == .truncated || e?.code == .corrupt, "\(String(describing: e))")
  }

  @Test func tinyTIFFClaiming10To5SquaredIsRefused() {
    let e = Self.code(HostileFiles.tiff(width: 100_000, height: 100_000, channels: 1, bitsPerSample: 8, float: false, stripBytes: 16))
    #expect(e?.code == .tooLarge && e?.message.contains("100000 × 100000") == true)
  }
}
