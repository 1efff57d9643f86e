import Foundation
import SegCache
import SegCore
import SegTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Faults that happen to real runs: the disk fills during `prepare` and while a checkpoint is
/// written, the output folder is read-only, a shard is truncated or replaced while training
/// reads it, `prepare --merge` is killed, two `prepare`s share a folder. In every case: one
/// error line, the earlier outputs intact, and a re-run (`--resume` for training) ends with
/// the bytes of an undisturbed run. The faults are real: a tmpfs that fills or is read-only
/// (when the tests run as root), or the LD_PRELOAD library Tests/Faults/faultshim.c, which
/// makes the system calls fail or the process die at an exact point.
@Suite(.serialized) struct FaultTests {
  /// The non-hidden files of a folder and their bytes.
  static func files(_ dir: String) throws -> [String: [UInt8]] {
    var out: [String: [UInt8]] = [:]
    for name in try FileIO.listDirectory(dir) where !name.hasPrefix(".") { out[name] = try FileIO.read(dir + "/" + name) }
    return out
  }

  static func hidden(_ dir: String) throws -> [String] { try FileIO.listDirectory(dir).filter { $0.hasPrefix(".") } }

  /// KiB a folder's files take on a tmpfs (whole 4 KiB pages).
  static func kilobytes(_ dir: String) throws -> Int {
    try FileIO.listDirectory(dir).reduce(0) { $0 + 4 * ((try FileIO.read(dir + "/" + $1).count + 4095) / 4096) }
  }

  /// One error line from `unet`, mentioning `text`.
  static func expectOneLine(_ r: CommandResult, _ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(r.status != 0, sourceLocation: sourceLocation)
    #expect(r.stderrLines.count == 1 && r.stderrLines.first?.hasPrefix("unet: ") == true, "\(r.stderr)", sourceLocation: sourceLocation)
    #expect(r.stderr.contains(text), "\(r.stderr)", sourceLocation: sourceLocation)
  }

  /// The killable pipeline with fewer samples: the "earlier" shard set of a folder.
  static func smallerPipeline(_ dir: String) throws -> String {
    let text = try String(contentsOfFile: try killablePipeline(dir), encoding: .utf8)
    let path = dir + "/small.yaml"
    try text.replacingOccurrences(of: "samples_per_image: 6", with: "samples_per_image: 2").write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  enum Disk: String, CaseIterable, Sendable { case tmpfs, shim }

  @Test(.enabled(if: Faults.canMount, "mounting a tmpfs needs root"))
  func diskFullDuringPrepareOnATmpfsKeepsTheEarlierSetAndTheRerunMatches() throws {
    try Self.diskFullDuringPrepare(.tmpfs)
  }

  @Test(.enabled(if: Faults.haveShim, "the fault library needs a C compiler"))
  func diskFullDuringPrepareThroughTheFaultLibraryKeepsTheEarlierSetAndTheRerunMatches() throws {
    try Self.diskFullDuringPrepare(.shim)
  }

  static func diskFullDuringPrepare(_ disk: Disk) throws {
    let dir = TestPaths.temporaryDirectory("enospc")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let small = try Self.smallerPipeline(dir)
    let pipeline = try killablePipeline(dir)
    #expect(try runUnet(["prepare", pipeline, "--out", dir + "/ref", "--quiet"]).status == 0)
    let full = try Self.kilobytes(dir + "/ref")
    var out = dir + "/out"
    var env: [String: String]? = nil
    if disk == .tmpfs {
      out = try #require(Faults.tmpfs(kilobytes: 4096, label: "enospc-fs"))
    }
    defer { if disk == .tmpfs { Faults.unmount(out) } }
    let first = try runUnet(["prepare", small, "--out", out, "--quiet"])
    #expect(first.status == 0, "\(first.stderr)")
    let earlier = try Self.files(out)
    let used = try Self.kilobytes(out)
    // Room for half of the new set: the run fails part-way through its shards.
    if disk == .tmpfs {
      try Faults.remount(out, "size=\(used + full / 2)k")
    } else {
      env = Faults.environment(["UNET_FAULT_ENOSPC": out + "/*:\(full / 2 * 1024)"])
      try #require(env != nil)
    }
    let failed = try runUnet(["prepare", pipeline, "--out", out, "--quiet", "--workers", "2"], environment: env)
    Self.expectOneLine(failed, "No space left on device")
    #expect(try Self.files(out) == earlier, "the earlier shard set and manifest are untouched")
    #expect(try runUnet(["inspect", out, "--verify", "--fast"]).status == 0)
    if disk == .tmpfs { try Faults.remount(out, "size=\(used + 2 * full + 64)k") }
    let rerun = try runUnet(["prepare", pipeline, "--out", out, "--quiet"])
    #expect(rerun.status == 0, "\(rerun.stderr)")
    #expect(try Self.files(out) == Self.files(dir + "/ref"), "the finished set equals an undisturbed run byte for byte")
    #expect(try Self.hidden(out).isEmpty)
  }

  /// As root only a read-only mount makes a folder read-only; otherwise its mode does.
  @Test(.enabled(if: Faults.canMount || getuid() != 0, "as root without mount rights nothing makes a folder read-only"))
  func readOnlyOutputFolderNeedsNoWritesWhenNothingChangedAndFailsCleanlyOtherwise() throws {
    let dir = TestPaths.temporaryDirectory("readonly")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let small = try Self.smallerPipeline(dir)
    let pipeline = try killablePipeline(dir)
    #expect(try runUnet(["prepare", pipeline, "--out", dir + "/ref", "--quiet"]).status == 0)
    let mount = Faults.canMount ? Faults.tmpfs(kilobytes: 8192, label: "readonly-fs") : nil
    let out = mount ?? dir + "/out"
    defer { if let mount { Faults.unmount(mount) } }
    #expect(try runUnet(["prepare", small, "--out", out, "--quiet"]).status == 0)
    let earlier = try Self.files(out)
    if mount != nil { try Faults.remount(out, "ro") } else { chmod(out, 0o555) }
    let same = try runUnet(["prepare", small, "--out", out])
    #expect(same.status == 0 && same.stdout.contains("reused"), "nothing to do, so nothing to write: \(same.stderr)")
    let changed = try runUnet(["prepare", pipeline, "--out", out, "--quiet"])
    Self.expectOneLine(changed, mount != nil ? "Read-only file system" : "Permission denied")
    #expect(try Self.files(out) == earlier)
    if mount != nil { try Faults.remount(out, "rw") } else { chmod(out, 0o755) }
    #expect(try runUnet(["prepare", pipeline, "--out", out, "--quiet"]).status == 0)
    #expect(try Self.files(out) == Self.files(dir + "/ref"))
  }

  /// `prepare --merge` killed (SIGKILL) while writing its temporary manifest, before its fsync,
  /// and just before its rename: no manifest.json appears (or the old one stays), the partial
  /// manifests are kept, and the next merge writes the single-machine manifest.
  @Test(
    .enabled(if: Faults.haveShim, "the fault library needs a C compiler"),
    arguments: ["write:*/.manifest.json.tmp-*:1", "fsync:*/.manifest.json.tmp-*:1", "rename:*/manifest.json:1"])
  func killedMergeLeavesNoPartialManifestAndTheNextMergeMatches(_ killPoint: String) throws {
    let dir = TestPaths.temporaryDirectory("merge-kill")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let pipeline = try killablePipeline(dir)
    #expect(try runUnet(["prepare", pipeline, "--out", dir + "/single", "--quiet"]).status == 0)
    let parts = dir + "/parts"
    for i in 0..<3 {
      #expect(try runUnet(["prepare", pipeline, "--out", parts, "--quiet", "--shard-index", "\(i)", "--shard-count", "3"]).status == 0)
    }
    let before = try Self.files(parts)
    let env = try #require(Faults.environment(["UNET_FAULT_KILL": killPoint]))
    let killed = try runUnet(["prepare", "--merge", "--out", parts], environment: env)
    #expect(killed.status == SIGKILL, "status \(killed.status): \(killed.stderr)")
    #expect(try Self.files(parts) == before, "no manifest.json, partial manifests intact")
    let merged = try runUnet(["prepare", "--merge", "--out", parts])
    #expect(merged.status == 0, "\(merged.stderr)")
    #expect(try FileIO.read(parts + "/manifest.json") == FileIO.read(dir + "/single/manifest.json"))
    let leftovers = try Self.hidden(parts)
    #expect(leftovers.isEmpty, "\(leftovers)")
  }

  @Test func aSecondPrepareOnTheSameFolderIsRefusedWithTheHolderNamed() throws {
    let dir = TestPaths.temporaryDirectory("lock")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let pipeline = try killablePipeline(dir)
    let out = dir + "/out"
    try FileIO.makeDirectories(out)
    // This test process plays the first `unet prepare`: it holds the folder's lock.
    guard case .acquired(let lock) = try FileLock.acquire(out + "/.unet-prepare.lock") else {
      Issue.record("could not take the lock")
      return
    }
    let second = try runUnet(["prepare", pipeline, "--out", out, "--quiet"])
    Self.expectOneLine(second, "another unet prepare (pid \(getpid()) on ")
    #expect(second.stderr.contains("is writing this folder (hint: wait for it to finish, or give this run another --out)"))
    let part = try runUnet(["prepare", pipeline, "--out", out, "--quiet", "--shard-index", "0", "--shard-count", "2"])
    Self.expectOneLine(part, "is writing this folder")
    let merge = try runUnet(["prepare", "--merge", "--out", out])
    Self.expectOneLine(merge, "is writing this folder")
    #expect(try FileIO.listDirectory(out) == [".unet-prepare.lock"], "the refused runs wrote nothing")
    withExtendedLifetime(lock) {}
  }

  @Test func partsShareAFolderButEachPartRunsOnce() throws {
    let dir = TestPaths.temporaryDirectory("lock-parts")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let pipeline = try killablePipeline(dir)
    let out = dir + "/out"
    try FileIO.makeDirectories(out)
    guard case .acquired(let lock) = try FileLock.acquire(out + "/.unet-prepare.part-1.lock") else {
      Issue.record("could not take the lock")
      return
    }
    let other = try runUnet(["prepare", pipeline, "--out", out, "--quiet", "--shard-index", "0", "--shard-count", "2"])
    #expect(other.status == 0, "part 0 runs beside part 1: \(other.stderr)")
    let same = try runUnet(["prepare", pipeline, "--out", out, "--quiet", "--shard-index", "1", "--shard-count", "2"])
    Self.expectOneLine(same, "is writing this folder")
    let whole = try runUnet(["prepare", pipeline, "--out", out, "--quiet"])
    Self.expectOneLine(whole, "is writing this folder")
    withExtendedLifetime(lock) {}
  }

  /// Two real `unet prepare` processes started together on one folder: the one that comes
  /// second is refused (or, if the first has finished by then, finds nothing to do); the set is
  /// the undisturbed one either way.
  @Test func twoConcurrentPreparesEndWithTheUndisturbedSet() throws {
    let dir = TestPaths.temporaryDirectory("lock-race")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let pipeline = try killablePipeline(dir)
    #expect(try runUnet(["prepare", pipeline, "--out", dir + "/ref", "--quiet"]).status == 0)
    let out = dir + "/out"
    let results = Mutex<[CommandResult]>([])
    DispatchQueue.concurrentPerform(iterations: 2) { _ in
      if let r = try? runUnet(["prepare", pipeline, "--out", out, "--quiet", "--workers", "1"]) {
        results.withLock { $0.append(r) }
      }
    }
    let outcomes = results.withLock { $0 }
    #expect(outcomes.count == 2 && outcomes.contains { $0.status == 0 })
    for r in outcomes where r.status != 0 { Self.expectOneLine(r, "is writing this folder") }
    #expect(try Self.files(out) == Self.files(dir + "/ref"))
    #expect(try Self.hidden(out).isEmpty)
  }
}
