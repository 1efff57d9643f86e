import SegCore
import Testing

enum TestCode: String, ErrorCode { case bad }
enum SubjectCode: String, ErrorCode {
  case bad
  static var subject: String? { "pipeline" }
}

@Suite struct DomainErrorTests {
  @Test func oneLineWithPathLineKeyAndHint() {
    #expect("\(DomainError(TestCode.bad, "no path"))" == "no path")
    #expect("\(DomainError(TestCode.bad, path: "a.yaml", "broken"))" == "a.yaml: broken")
    #expect(
      "\(DomainError(TestCode.bad, path: "a.yaml", line: 3, key: "stages[0].affine", "bad\nvalue", hint: "use 1"))"
        == "a.yaml:3: stages[0].affine: bad value (hint: use 1)")
    #expect("\(DomainError(TestCode.bad, path: "a.yaml", key: "", "empty key"))" == "a.yaml: empty key")
    #expect("\(DomainError(SubjectCode.bad, line: 2, "no file"))" == "pipeline:2: no file", "the subject stands in for a path")
    #expect("\(DomainError(SubjectCode.bad, path: "p.yaml", "x"))" == "p.yaml: x")
  }

  @Test func atNamesAPathAndKeepsTheRest() {
    let e = DomainError(TestCode.bad, "broken", hint: "h").at("f.png")
    #expect(e.path == "f.png" && e.code == .bad && e.message == "broken" && e.hint == "h")
    #expect(e.description == "f.png: broken (hint: h)")
  }

  @Test func fileErrorsCarryTheSystemReason() {
    let e = FileIOError(errno: 2, path: "/x", doing: "open")
    #expect(e.code == .notFound && e.description == "/x: cannot open: No such file or directory")
  }
}
