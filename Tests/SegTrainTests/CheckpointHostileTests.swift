import Foundation
import SegCore
import SegTrain
import Testing

/// Checkpoints from a stranger whose checksum is right (anyone can compute a SHA-256) but whose
/// header lies: counts that overflow, a network far bigger than the parameters stored. Each is
/// refused with a CheckpointError before anything of the claimed size is allocated.
struct CheckpointHostileTests {
  /// The committed seed checkpoint of the fuzzer (depth 1, width 2, Adam), read through the
  /// public API only.
  static func seed() throws -> [UInt8] {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    return Array(try Data(contentsOf: root.appendingPathComponent("Fuzz/seeds/checkpoint/v1-unet-adam.ckpt")))
  }

  /// The file with its JSON header replaced by `edit(header)`, lengths and checksum fixed.
  static func rewritingHeader(_ bytes: [UInt8], _ edit: (String) -> String) -> [UInt8] {
    let length = Int(bytes[12]) | Int(bytes[13]) << 8 | Int(bytes[14]) << 16 | Int(bytes[15]) << 24
    let header = String(decoding: bytes[16..<(16 + length)], as: UTF8.self)
    let json = Array(edit(header).utf8)
    let n = UInt32(json.count)
    var out = Array(bytes[0..<12]) + [UInt8(n & 0xFF), UInt8((n >> 8) & 0xFF), UInt8((n >> 16) & 0xFF), UInt8(n >> 24)]
    out += json + bytes[(16 + length)..<(bytes.count - 32)]
    return out + SHA256.hash(out)
  }

  static func refusal(_ bytes: [UInt8]) -> CheckpointError? {
    do {
      _ = try Checkpoint.decode(bytes, path: "x.ckpt")
      return nil
    } catch {
      #expect(!error.description.contains("\n") && error.description.hasPrefix("x.ckpt: "))
      return error
    }
  }

  @Test func theSeedLoads() throws {
    let c = try Checkpoint.decode(try Self.seed(), path: "x.ckpt")
    #expect(c.model.parameters.count == 434 && c.optimizerState.count == 868)
  }

  @Test func countsThatOverflowAreRefusedNotATrap() throws {
    let big = Self.rewritingHeader(try Self.seed()) {
      $0.replacingOccurrences(of: "\"parameter_count\":434", with: "\"parameter_count\":\(Int.max - 10)")
        .replacingOccurrences(of: "\"state_count\":0", with: "\"state_count\":\(Int.max - 10)")
    }
    #expect(Self.refusal(big)?.code == .truncated)
  }

  @Test func aHugeNetworkInASmallFileIsRefusedBeforeItIsBuilt() throws {
    // base_width 65536 at depth 4 passes the configuration's own checks, and would need
    // 9 · 2^40 float parameters (36 TB); the file holds 434.
    let huge = Self.rewritingHeader(try Self.seed()) {
      $0.replacingOccurrences(of: "\"base_width\":2", with: "\"base_width\":65536")
        .replacingOccurrences(of: "\"depth\":1", with: "\"depth\":4")
    }
    let e = Self.refusal(huge)
    #expect(e?.code == .wrongArchitecture && e?.message.contains("434 parameters stored") == true)
  }
}
