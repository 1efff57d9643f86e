import Foundation
import SegCore
import SegTestSupport
import Testing

/// `unet info` end to end on the fixtures, run as a black box.
@Suite struct InfoCommandTests {
  @Test func textLineForA16BitPNG() throws {
    let path = TestPaths.fixtures + "/png/gray16.png"
    let result = try runUnet(["info", path])
    #expect(result.status == 0)
    #expect(result.stdout.hasPrefix(path + ": PNG 64 × 48, 1 channel, 1 page, uint16 (16-bit gray), min "))
    #expect(result.stderr.isEmpty)
  }

  @Test func jsonLinesHaveTheContractKeys() throws {
    let files = ["png/gray16.png", "tiff/multipage-u16.tif", "tiff/f32.tif", "jpeg/cmyk.jpg", "tiff/u32-labels.tif"]
    let result = try runUnet(["info", "--json"] + files.map { TestPaths.fixtures + "/" + $0 })
    #expect(result.status == 0)
    let lines = result.stdoutLines
    #expect(lines.count == files.count)
    let objects = try lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:] }
    for object in objects {
      #expect(Set(object.keys) == ["path", "format", "width", "height", "channels", "pages", "dtype", "bits", "min", "max"])
    }
    #expect(objects[0]["dtype"] as? String == "uint16" && objects[0]["bits"] as? Int == 16)
    #expect(objects[1]["pages"] as? Int == 3 && objects[1]["format"] as? String == "tiff")
    #expect(objects[2]["dtype"] as? String == "float32" && (objects[2]["min"] as? Double ?? 0) < 0)
    #expect(objects[3]["channels"] as? Int == 3)
    #expect(objects[4]["dtype"] as? String == "uint32" && (objects[4]["max"] as? Int ?? 0) > 65535)
  }

  @Test func aFailedFileStillLetsTheOthersPrintAndExitsNonZero() throws {
    let good = TestPaths.fixtures + "/png/gray8.png"
    let bad = TestPaths.fixtures + "/corrupt/truncated.png"
    let text = try runUnet(["info", good, bad, good])
    #expect(text.status == 1)
    #expect(text.stdoutLines.count == 2)
    #expect(text.stderrLines == ["unet: \(bad): unexpected end of file"])

    let json = try runUnet(["info", "--json", bad, good])
    #expect(json.status == 1)
    let first = try JSONSerialization.jsonObject(with: Data(json.stdoutLines[0].utf8)) as? [String: Any]
    #expect(first?["path"] as? String == bad)
    #expect((first?["error"] as? String)?.isEmpty == false)
    #expect(json.stdoutLines.count == 2)
  }

  @Test func corruptFilesPrintOnlyOurOwnOneLineErrors() throws {
    // No libpng/libjpeg/libtiff message may reach stderr: every line is ours.
    let folder = TestPaths.fixtures + "/corrupt"
    let result = try runUnet(["info", folder])
    #expect(result.status == 1)
    #expect(result.stdout.isEmpty)
    let names = try FileManager.default.contentsOfDirectory(atPath: folder).filter { !$0.hasPrefix(".") }
    #expect(result.stderrLines.count == names.count)
    for line in result.stderrLines {
      #expect(line.hasPrefix("unet: \(folder)/"), "\(line)")
    }
  }

  @Test func folderArgumentListsEveryImageBelowIt() throws {
    let result = try runUnet(["info", "--json", TestPaths.fixtures + "/cells"])
    #expect(result.status == 0)
    #expect(result.stdoutLines.count == 8)
    #expect(result.stdoutLines.first?.contains("cells/images/cells_0.png") == true)
  }

  @Test func badArgumentsAreRejected() throws {
    let result = try runUnet(["info", "--max-pixels", "0", TestPaths.fixtures + "/png/gray8.png"])
    #expect(result.status != 0)
    #expect(result.stderr.contains("--max-pixels must be positive"))
    let missing = try runUnet(["info", "/nonexistent.png"])
    #expect(missing.status == 1)
    #expect(missing.stderrLines == ["unet: /nonexistent.png: cannot open: No such file or directory"])
  }
}

/// `unet fixtures --check` agrees with the committed fixtures.
@Suite struct FixturesCommandTests {
  @Test func checkPassesOnTheCommittedFixtures() throws {
    let result = try runUnet(["fixtures", "--check", "--out", TestPaths.fixtures])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(result.stdout.contains("fixture expectations hold"))
  }

  @Test func regeneratingWritesTheSameSet() throws {
    let dir = TestPaths.temporaryDirectory("fixtures")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let result = try runUnet(["fixtures", "--out", dir])
    #expect(result.status == 0)
    let check = try runUnet(["fixtures", "--check", "--out", dir])
    #expect(check.status == 0)
    // Same generator, same library versions → the same bytes as the committed files.
    let committed = try FileManager.default.subpathsOfDirectory(atPath: TestPaths.fixtures).filter { $0.contains(".") }
    for path in committed.sorted() {
      let a = FileManager.default.contents(atPath: TestPaths.fixtures + "/" + path)
      let b = FileManager.default.contents(atPath: dir + "/" + path)
      #expect(b != nil, "\(path) not regenerated")
      if a != b { print("note: \(path) differs in bytes (library version?); its decode was checked above") }
    }
  }
}
