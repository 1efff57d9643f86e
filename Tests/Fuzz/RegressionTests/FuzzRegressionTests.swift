import Foundation
import SegCore
import SegFuzzTargets
import SegTestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Every input the fuzzers ever crashed on (Tests/Fuzz/regressions/TARGET/) and every seed
/// (Tests/Fuzz/seeds.txt), run through the fuzz targets in the normal test suite: a fixed bug
/// that came back would trap here and fail the run.
@Suite struct FuzzRegressionTests {
  static let root = TestPaths.repositoryRoot + "/Tests/Fuzz"

  /// The files of a folder under Tests/Fuzz, sorted.
  static func files(_ folder: String) -> [String] {
    let dir = root + "/" + folder
    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
    return names.filter { !$0.hasPrefix(".") }.sorted().map { dir + "/" + $0 }
  }

  /// The seeds of a target, as .ci/fuzz gathers them: Tests/Fuzz/seeds/TARGET plus the globs of
  /// its line in seeds.txt.
  static func seeds(_ target: FuzzTarget) throws -> [String] {
    let text = try String(contentsOfFile: root + "/seeds.txt", encoding: .utf8)
    var out = files("seeds/" + target.rawValue)
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
      let words = line.split(separator: " ").map(String.init)
      guard words.first == target.rawValue else { continue }
      for pattern in words.dropFirst() { out += expand(TestPaths.repositoryRoot + "/" + pattern) }
    }
    return out
  }

  static func expand(_ pattern: String) -> [String] {
    var g = glob_t()
    defer { globfree(&g) }
    guard glob(pattern, 0, nil, &g) == 0 else { return [] }
    return (0..<Int(g.gl_pathc)).compactMap { g.gl_pathv[$0].map { String(cString: $0) } }
  }

  static func run(_ target: FuzzTarget, _ path: String) throws {
    target.run(try FileIO.read(path))
  }

  @Test func savedCrashInputsNoLongerCrash() throws {
    var total = 0
    for target in FuzzTarget.allCases {
      let inputs = Self.files("regressions/" + target.rawValue)
      for path in inputs { try Self.run(target, path) }
      total += inputs.count
    }
    // Reaching here means none trapped; the folders must not have gone missing.
    #expect(total >= 2, "Tests/Fuzz/regressions lost its inputs")
  }

  @Test(arguments: FuzzTarget.allCases)
  func seedsRunThroughEveryTarget(_ target: FuzzTarget) throws {
    let seeds = try Self.seeds(target)
    #expect(seeds.count >= 2, "\(target.rawValue) has \(seeds.count) seeds")
    for path in seeds { try Self.run(target, path) }
  }
}
