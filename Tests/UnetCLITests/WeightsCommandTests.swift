import Foundation
import SegCore
import SegIO
import SegTestSupport
import SegWeights
import Testing

@Suite struct WeightsCommandTests {
  @Test func writesNpyAndTiffThatMatchTheLibrary() throws {
    let dir = TestPaths.temporaryDirectory("weights")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let labels = TestPaths.fixtures + "/cells/labels/cells_1.png"
    let expected = WeightMap.compute(mask: try LabelMask.read(labels))
    let npy = try runUnet(["weights", labels, "--out", dir + "/w.npy", "--preview", dir + "/w.png"])
    #expect(npy.status == 0, "\(npy.stderr)")
    #expect(npy.stdout.contains("96 × 96 float32 weight map"))
    let array = try NpyArray.decode(try FileIO.read(dir + "/w.npy"))
    #expect(array.dtype == .float32 && array.shape == [96, 96])
    #expect(array.floats() == expected.floatSamples())
    let tif = try runUnet(["weights", labels, "--out", dir + "/w.tif", "--threads", "1"])
    #expect(tif.status == 0)
    #expect(try ImageDecoder.read(dir + "/w.tif").image == expected)
    let png = try ImageDecoder.read(dir + "/w.png").image
    #expect(png.channels == 3 && png.height == 96 && png.width > 96)
  }

  @Test func optionsChangeTheMap() throws {
    let dir = TestPaths.temporaryDirectory("weights-options")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let labels = TestPaths.fixtures + "/cells/labels/cells_2.png"
    var maps: [[Float]] = []
    for extra in [[], ["--w0", "5"], ["--sigma", "3"], ["--class-balance", "none"], ["--class-weights", "1,2"],
                  ["--border", "everywhere"], ["--class-balance", "dataset", "--dataset-masks", TestPaths.fixtures + "/cells/labels"]] {
      let r = try runUnet(["weights", labels, "--out", dir + "/w.npy"] + extra)
      #expect(r.status == 0, "\(extra): \(r.stderr)")
      maps.append(try NpyArray.decode(try FileIO.read(dir + "/w.npy")).floats())
    }
    for i in 1..<maps.count { #expect(maps[i] != maps[0], "option set \(i) had no effect") }
    // --class-balance none: the minimum is exactly 1 (background far from cells).
    #expect(maps[3].min() == 1)
  }

  @Test func badInputGivesOneLineErrorsAndKeepsEarlierOutput() throws {
    let dir = TestPaths.temporaryDirectory("weights-bad")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let out = dir + "/w.npy"
    try FileIO.writeAtomically([1, 2, 3], to: out)
    let cases: [(String, String)] = [
      (TestPaths.fixtures + "/png/rgb8.png", "must have one channel"),
      (TestPaths.fixtures + "/tiff/multipage-u16.tif", "must have one page"),
      (TestPaths.fixtures + "/corrupt/truncated.png", "unexpected end of file"),
      (TestPaths.fixtures + "/tiff/f32.tif", "label values must be non-negative integers"),
      (dir + "/missing.png", "No such file"),
    ]
    for (input, message) in cases {
      let r = try runUnet(["weights", input, "--out", out])
      #expect(r.status != 0)
      #expect(r.stderrLines.count == 1 && r.stderr.contains(input) && r.stderr.contains(message), "\(r.stderr)")
    }
    #expect(try FileIO.read(out) == [1, 2, 3], "earlier output must stay intact")
    let badOut = try runUnet(["weights", TestPaths.fixtures + "/cells/labels/cells_0.png", "--out", dir + "/w.png"])
    #expect(badOut.status != 0 && badOut.stderr.contains("--out must end in .npy"))
    let badSigma = try runUnet(["weights", TestPaths.fixtures + "/cells/labels/cells_0.png", "--out", out, "--sigma", "0"])
    #expect(badSigma.status != 0 && badSigma.stderr.contains("--sigma must be positive"))
  }
}
