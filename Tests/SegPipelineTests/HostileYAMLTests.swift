import Foundation
import SegPipeline
import SegTestSupport
import Testing

/// Pipeline files made to hurt the YAML parser: aliases that expand exponentially ("billion
/// laughs"), aliased or complex mapping keys (which Yams hashes in full), deep nesting; and
/// the inputs the YAML fuzzer found. Each gives a one-line PipelineError naming the file.
@Suite struct HostileYAMLTests {
  static let head = "version: 1\nseed: 1\nsources: {folder: data}\nstages: []\n"

  /// `levels` nested lists of `width` aliases to the level below: width^levels leaves.
  static func laughs(levels: Int, width: Int) -> String {
    var text = head + "l0: &l0 [lol]\n"
    for k in 1...levels {
      text += "l\(k): &l\(k) [" + Array(repeating: "*l\(k - 1)", count: width).joined(separator: ", ") + "]\n"
    }
    return text
  }

  static func refusal(_ text: String, _ limits: PipelineLimits = PipelineLimits()) -> PipelineError? {
    do {
      _ = try PipelineSpec.parse(text, file: "p.yaml", limits: limits)
      return nil
    } catch {
      #expect(!error.description.contains("\n") && error.description.hasPrefix("p.yaml"))
      return error
    }
  }

  @Test func billionLaughsIsRefusedNamingTheLimit() {
    let text = Self.laughs(levels: 9, width: 10)  // 10^9 nodes from 700 bytes
    #expect(text.utf8.count < 1000)
    let e = Self.refusal(text)
    #expect(e?.code == .tooLarge)
    #expect(e?.message.contains("more than 100000 nodes") == true && e?.hint?.contains("--max-yaml-nodes") == true)
  }

  @Test func theNodeLimitIsExactAndCanBeRaised() {
    // 4 levels of 10: 10^4 leaves, 11111 lists, plus the top mapping and its few scalars.
    let text = Self.laughs(levels: 4, width: 10)
    #expect(Self.refusal(text, PipelineLimits(maxNodes: 5000))?.code == .tooLarge)
    // Within a raised limit the file parses on to its real problem: the unknown key l0.
    let e = Self.refusal(text, PipelineLimits(maxNodes: 50_000))
    #expect(e?.code == .unknownKey && e?.key == "l0")
  }

  /// Aliases and complex nodes as keys are refused (`.syntax`); the same characters quoted, in
  /// block scalars or in comments are text, so those files go on to their real error: the
  /// unknown key `note` (`.unknownKey`).
  @Test(arguments: [
    ("a: &a [x, y]\n*a : 1\n", PipelineError.Code.syntax),
    ("a: &a x\nb: {*a: 1}\n", .syntax),
    ("? [x, y]\n: 1\n", .syntax),
    ("[x, y]: 1\n", .syntax),
    ("{a: 1}: 2\n", .syntax),
    ("note: '*a: 1'\n", .unknownKey),
    ("note: \"*a: 1 [x]: 2\"\n", .unknownKey),
    ("note: |\n  *a: 1\n  [x]: 2\n  ? y\n", .unknownKey),
    ("note: >-\n  {a: 1}: 2\n", .unknownKey),
    ("# *a: 1\nnote: x  # [b]: 2\n", .unknownKey),
  ])
  func mappingKeysMustBePlainScalars(_ body: String, _ expected: PipelineError.Code) {
    let e = Self.refusal(Self.head + body)
    #expect(e?.code == expected, "\(String(describing: e))")
    if expected == .syntax { #expect(e?.hint?.contains("plain words") == true) } else { #expect(e?.key == "note") }
  }

  @Test func anchorsThatPipelinesUseStillWork() throws {
    let spec = try PipelineSpec.load(TestPaths.repositoryRoot + "/Tests/Fuzz/seeds/yaml/aliases.yaml")
    #expect(spec.stages.count == 4)
    #expect(spec.canonical.serialized().contains("zscore"))
  }

  @Test func deepFlowNestingIsRefused() {
    let deep = Self.head + "x: " + String(repeating: "[", count: 500) + String(repeating: "]", count: 500) + "\n"
    let e = Self.refusal(deep)
    #expect(e?.code == .syntax && e?.message.contains("deeper than 64") == true)
  }

  @Test func deepBlockNestingOnASmallStackIsAnError() async {
    // libyaml stops at 1000 levels; compose must get there without exhausting a worker
    // thread's stack (pipelines load inside async commands).
    let deep = Self.head + "x:\n" + String(repeating: "- ", count: 990) + "z\n"
    let code = await Task.detached { Self.refusal(deep)?.code }.value
    #expect(code == .unknownKey)
  }

  @Test func aPairWithNoImageIsAnErrorNotATrap() {
    // Found by reading the code while fuzzing: images[0] of an empty list trapped.
    let e = Self.refusal("version: 1\nseed: 1\nsources:\n  pairs:\n    - {image: [], mask: m.png}\nstages: []\n")
    #expect(e?.code == .noSources && e?.line == 5)
  }
}
