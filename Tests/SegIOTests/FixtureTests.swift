import SegCore
import SegIO
import SegSynth
import SegTestSupport
import Testing

/// Every committed fixture decodes to what the generator says it holds, and every corrupt
/// fixture throws its expected error.
@Suite struct FixtureTests {
  static let fixtures: [Fixture] = (try? FixtureSet.all()) ?? []

  @Test func theFixtureSetBuilds() throws {
    let all = try FixtureSet.all()
    #expect(all.count >= 50)
    #expect(all.filter { $0.expectedError != nil }.count >= 10)
  }

  @Test(arguments: fixtures)
  func committedFixtureDecodesAsExpected(_ fixture: Fixture) throws {
    let path = TestPaths.fixtures + "/" + fixture.path
    let bytes = try FileIO.read(path)
    let problem = FixtureCheck.problem(fixture, bytes: bytes)
    #expect(problem == nil, "\(fixture.path): \(problem ?? "")")
  }

  @Test(arguments: fixtures.filter { $0.expectedError != nil })
  func corruptFixtureThrowsItsErrorNamingTheFile(_ fixture: Fixture) throws {
    let path = TestPaths.fixtures + "/" + fixture.path
    do {
      _ = try ImageDecoder.read(path)
      Issue.record("\(fixture.path) decoded but should fail with \(fixture.expectedError?.rawValue ?? "")")
    } catch {
      #expect(error.code == fixture.expectedError)
      #expect(error.path == path)
      #expect(error.description.hasPrefix(path + ": "))
      #expect(!error.description.contains("\n"))
    }
  }

  @Test func sixteenBitPNGKeepsExactValues() throws {
    // 0, 1, 255, 256, 32768, 65534, 65535 survive bit for bit (no gamma, no scaling).
    let values: [UInt16] = [0, 1, 255, 256, 32768, 65534, 65535, 4097]
    let image = Image(width: 4, height: 2, pixels: values)
    let decoded = try PNGCodec.decode(try PNGCodec.encode(image))
    #expect(decoded.image == image)
    #expect(decoded.bitsPerSample == 16)
  }

  @Test func paletteIndicesModeKeepsLabels() throws {
    let path = TestPaths.fixtures + "/png/palette8.png"
    let indices = try ImageDecoder.read(path, options: DecodeOptions(palette: .indices)).image
    let expanded = try ImageDecoder.read(path).image
    #expect(indices.channels == 1 && indices.pixelType == .uint8)
    #expect(expanded.channels == 3)
    #expect((indices.range?.max ?? 99) <= 15)
  }

  @Test func multipageTIFFDecodesEveryPage() throws {
    let decoded = try ImageDecoder.read(TestPaths.fixtures + "/tiff/multipage-u16.tif")
    #expect(decoded.pages.count == 3)
    #expect(decoded.pages.allSatisfy { $0.pixelType == .uint16 && $0.width == 64 && $0.height == 48 })
    #expect(decoded.pages[0] != decoded.pages[1])
  }

  @Test func labelTIFFKeepsIdsAboveUInt16() throws {
    let image = try ImageDecoder.read(TestPaths.fixtures + "/tiff/u32-labels.tif").image
    #expect(image.pixelType == .uint32)
    #expect((image.range?.max ?? 0) > 70_000)
  }
}

extension Fixture: CustomTestStringConvertible {
  public var testDescription: String { expectedError == nil ? path + " (\(options.palette.rawValue))" : path }
}
