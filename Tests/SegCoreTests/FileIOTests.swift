import Foundation
import SegCore
import SegTestSupport
import Testing

@Suite struct FileIOTests {
  @Test func appendCreatesThenExtends() throws {
    let dir = TestPaths.temporaryDirectory("append")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = dir + "/log.jsonl"
    try FileIO.append(Array("a\n".utf8), to: path)
    try FileIO.append(Array("b\n".utf8), to: path)
    #expect(try FileIO.read(path) == Array("a\nb\n".utf8))
    #expect { try FileIO.append([1], to: dir + "/missing/log") } throws: {
      ($0 as? FileIOError)?.code == .notFound && "\($0)".contains("/missing/log: cannot open for appending: ")
    }
    #expect { try FileIO.append([1], to: dir) } throws: { ($0 as? FileIOError)?.code == .isDirectory }
  }

  @Test func statusGivesSizeAndModificationTime() throws {
    let dir = TestPaths.temporaryDirectory("status")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try FileIO.writeAtomically([UInt8](repeating: 7, count: 1000), to: dir + "/f")
    let s = try FileIO.status(dir + "/f")
    let attributes = try FileManager.default.attributesOfItem(atPath: dir + "/f")
    let modified = try #require(attributes[.modificationDate] as? Date)
    #expect(s.bytes == 1000)
    #expect(abs(Double(s.mtimeNanoseconds) / 1e9 - modified.timeIntervalSince1970) < 1e-3)
    #expect { try FileIO.status(dir + "/none") } throws: { ($0 as? FileIOError)?.code == .notFound }
  }

  @Test func theMonotonicClockDoesNotGoBack() {
    var last = MonotonicClock.seconds()
    for _ in 0..<1000 {
      let now = MonotonicClock.seconds()
      #expect(now >= last)
      last = now
    }
    let ms = MonotonicClock.milliseconds()
    #expect(abs(ms / 1e3 - MonotonicClock.seconds()) < 0.5)
  }
}
