import ArgumentParser
import SegCore
import SegIO
import SegSynth

struct Fixtures: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Regenerate the repository's fixtures/ (synthetic cells, every decoder path, corrupt files).",
    discussion: """
      The fixtures are small files made by our own seeded generator. Run this after changing \
      the generator; --check decodes the files already there and compares them with what the \
      generator expects, without writing.
      """)

  @Option(help: "The fixtures folder.", completion: .directory)
  var out: String = "fixtures"

  @Flag(help: "Compare the existing files with the expectation instead of writing.")
  var check = false

  func run() throws {
    let fixtures = try FixtureSet.all()
    var written = Set<String>()
    var problems = 0
    for fixture in fixtures {
      let path = out + "/" + fixture.path
      if check {
        if let problem = FixtureCheck.problem(fixture, bytes: try? FileIO.read(path)) {
          printError("unet: \(path): \(problem)")
          problems += 1
        }
        continue
      }
      guard written.insert(fixture.path).inserted else { continue }
      try FileIO.makeDirectories(FileIO.parentDirectory(of: path))
      try FileIO.writeAtomically(fixture.bytes, to: path)
      print("\(path)  (\(fixture.bytes.count) bytes) \(fixture.note)")
    }
    if check {
      print("\(fixtures.count - problems) of \(fixtures.count) fixture expectations hold")
      if problems > 0 { throw ExitCode.failure }
    } else {
      print("wrote \(written.count) files under \(out)/")
    }
  }
}
