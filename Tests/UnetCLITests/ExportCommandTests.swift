import Foundation
import SegCore
import SegIO
import SegModel
import SegTestSupport
import SegTrain
import Testing

/// `unet export` and `unet predict --prob-format` without Python: files, messages, and bad
/// input (one-line errors naming the file, non-zero exit, earlier output intact).
@Suite struct ExportCommandTests {
  static func checkpoint(in dir: String, _ cfg: UNetConfiguration = UNetConfiguration(depth: 2, baseWidth: 4, padding: .same)) throws -> String {
    let trainer = Trainer(model: Network(configuration: cfg, seed: 2), configuration: TrainingConfiguration())
    let path = dir + "/model.ckpt"
    try Checkpoint(trainer, metadata: ["normalize": #"[{"method": "scale", "factor": 0.00392156862745098}]"#]).write(to: path)
    return path
  }

  @Test func everyFormatWritesItsFile() throws {
    let dir = TestPaths.temporaryDirectory("export-cli")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let ckpt = try Self.checkpoint(in: dir)
    let onnx = try runUnet(["export", ckpt, "--format", "onnx"])
    #expect(onnx.status == 0, "\(onnx.stderr)")
    #expect(onnx.stdout.contains("normalisation (apply before the graph; also in the metadata 'normalization'): x · 0.00392156862745098"))
    #expect(onnx.stdout.contains("\(dir)/model.onnx  "), "\(onnx.stdout)")
    let tensors = try runUnet(["export", ckpt, "--format", "safetensors", "--out", dir + "/w.safetensors"])
    #expect(tensors.status == 0 && FileIO.exists(dir + "/w.safetensors"), "\(tensors.stderr)")
    let sample = TestPaths.fixtures + "/cells/images/cells_2.png"
    let zip = try runUnet(["export", ckpt, "--format", "bioimageio", "--sample", sample, "--name", "Cells U-Net", "--author", "A B"])
    #expect(zip.status == 0, "\(zip.stderr)")
    #expect(zip.stdout.contains("test tensors cut from \(sample)") && zip.stdout.contains("\(dir)/model.zip!cover.png"), "\(zip.stdout)")
    let bytes = try FileIO.read(dir + "/model.zip")
    #expect(bytes.starts(with: [0x50, 0x4B, 0x03, 0x04]) && String(decoding: bytes.prefix(200), as: UTF8.self).contains("rdf.yaml"))
    // The same checkpoint exports the same bytes.
    #expect(try runUnet(["export", ckpt, "--format", "onnx", "--out", dir + "/again.onnx"]).status == 0)
    #expect(try FileIO.read(dir + "/again.onnx") == FileIO.read(dir + "/model.onnx"))
  }

  @Test func badInputFailsWithOneLineAndKeepsEarlierOutput() throws {
    let dir = TestPaths.temporaryDirectory("export-bad")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let ckpt = try Self.checkpoint(in: dir)
    let missing = try runUnet(["export", dir + "/nope.ckpt", "--format", "onnx"])
    #expect(missing.status == 1 && missing.stderr.hasPrefix("unet: \(dir)/nope.ckpt: "), "\(missing.stderr)")
    try FileIO.writeAtomically(Array("not a checkpoint at all".utf8), to: dir + "/junk.ckpt")
    let junk = try runUnet(["export", dir + "/junk.ckpt", "--format", "safetensors"])
    #expect(junk.status == 1 && junk.stderr.hasPrefix("unet: \(dir)/junk.ckpt: ") && junk.stderr.split(separator: "\n").count == 1, "\(junk.stderr)")
    // No sample given and no shards to find one in.
    try FileIO.writeAtomically(Array("earlier".utf8), to: dir + "/model.zip")
    let noSample = try runUnet(["export", ckpt, "--format", "bioimageio"])
    #expect(noSample.status == 1 && noSample.stderr.contains("no sample image") && noSample.stderr.contains("--sample IMAGE"), "\(noSample.stderr)")
    // A sample with the wrong channel count names the sample.
    let rgb = dir + "/rgb.png"
    try FileIO.writeAtomically(try PNGCodec.encode(Image(width: 16, height: 16, channels: 3, pixels: [UInt8](repeating: 9, count: 768))), to: rgb)
    let wrong = try runUnet(["export", ckpt, "--format", "bioimageio", "--sample", rgb])
    #expect(wrong.status == 1 && wrong.stderr == "unet: \(rgb): has 3 channel(s); the network takes 1\n", "\(wrong.stderr)")
    #expect(try FileIO.read(dir + "/model.zip") == Array("earlier".utf8))
    let usage = try runUnet(["export", ckpt, "--format", "safetensors", "--normalization-in-graph"])
    #expect(usage.status == 64 && usage.stderr.contains("--normalization-in-graph applies to --format onnx only"), "\(usage.stderr)")
    let name = try runUnet(["export", ckpt, "--format", "bioimageio", "--name", "a/b"])
    #expect(name.status == 64 && name.stderr.contains("--name must be"), "\(name.stderr)")
    let format = try runUnet(["export", ckpt, "--format", "tflite"])
    #expect(format.status == 64, "\(format.stderr)")
    // A missing folder is made; a path under a file is an error naming the output.
    #expect(try runUnet(["export", ckpt, "--format", "onnx", "--out", dir + "/new/folder/m.onnx"]).status == 0)
    let unwritable = try runUnet(["export", ckpt, "--format", "onnx", "--out", ckpt + "/m.onnx"])
    #expect(unwritable.status == 1 && unwritable.stderr.hasPrefix("unet: \(ckpt)/m.onnx: "), "\(unwritable.stderr)")
  }

  /// A checkpoint whose recorded normalisation does not parse (an unknown method, a data-set
  /// z-score without statistics) is refused by predict and export with one line naming the
  /// checkpoint and the entry; earlier outputs stay.
  @Test func badNormalisationMetadataIsRefused() throws {
    let dir = TestPaths.temporaryDirectory("bad-normalisation")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let trainer = Trainer(
      model: Network(configuration: UNetConfiguration(depth: 2, baseWidth: 4, padding: .same), seed: 2),
      configuration: TrainingConfiguration())
    let image = TestPaths.fixtures + "/cells/images/cells_0.png"
    let cases = [
      (["normalize": #"[{"method": "clahe"}]"#], "metadata.normalize[0].method: method must be minmax, scale, percentile or zscore, not clahe"),
      (["normalize": #"[{"method": "zscore", "scope": "dataset"}]"#, "dataset_statistics": "null"], "records no dataset_statistics"),
    ]
    for (i, (metadata, expected)) in cases.enumerated() {
      let ckpt = dir + "/bad\(i).ckpt"
      try Checkpoint(trainer, metadata: metadata).write(to: ckpt)
      try FileIO.writeAtomically(Array("earlier".utf8), to: dir + "/cells_0.prob.tif")
      let predict = try runUnet(["predict", ckpt, image, "--out", dir, "--threads", "1"])
      let export = try runUnet(["export", ckpt, "--format", "onnx", "--out", dir + "/m.onnx"])
      for r in [predict, export] {
        #expect(r.status == 1 && r.stderr.hasPrefix("unet: \(ckpt): its normalisation cannot be used: "), "\(r.stderr)")
        #expect(r.stderr.contains(expected) && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
      }
      #expect(try FileIO.read(dir + "/cells_0.prob.tif") == Array("earlier".utf8))
      #expect(!FileIO.exists(dir + "/m.onnx"))
    }
  }

  /// `--prob-format npy` and the default TIFF hold the same values: one float32 page per class.
  @Test func probabilityFormatsAgree() throws {
    let dir = TestPaths.temporaryDirectory("prob-format")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let ckpt = try Self.checkpoint(in: dir, UNetConfiguration(depth: 2, baseWidth: 4, padding: .valid, classes: 3))
    let image = TestPaths.fixtures + "/cells/images/cells_3.png"
    for format in ["tif", "npy"] {
      let r = try runUnet(["predict", ckpt, image, "--out", dir, "--prob-format", format, "--threads", "1"])
      #expect(r.status == 0, "\(r.stderr)")
    }
    let tiff = try ImageDecoder.read(dir + "/cells_3.prob.tif")
    let npy = try NpyArray.decode(try FileIO.read(dir + "/cells_3.prob.npy"))
    #expect(tiff.pages.count == 3 && tiff.pages.allSatisfy { $0.channels == 1 && $0.pixelType == .float32 && $0.width == 96 })
    #expect(npy.shape == [3, 96, 96] && npy.dtype == .float32)
    #expect(tiff.pages.flatMap { $0.floatSamples() } == npy.floats())
    let bad = try runUnet(["predict", ckpt, image, "--out", dir, "--prob-format", "png"])
    #expect(bad.status == 64, "\(bad.stderr)")
  }
}
