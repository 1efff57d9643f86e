import Foundation
import SegCore

#if canImport(Glibc)
  import Glibc
#endif

/// Real faults for the fault tests: the LD_PRELOAD library of Tests/Faults/faultshim.c (full
/// disk, SIGKILL at an exact call, a file truncated or replaced while it is read), built here
/// with the C compiler; and small tmpfs mounts (a disk that really fills, a read-only folder)
/// where the tests run as root.
public enum Faults {
  /// The built shim, or nil (with the reason printed) when no C compiler is there.
  public static let shim: String? = {
    let source = TestPaths.repositoryRoot + "/Tests/Faults/faultshim.c"
    guard let text = try? FileIO.read(source) else { return nil }
    let out = NSTemporaryDirectory() + "swift-unet-faultshim-\(SHA256.hex(text).prefix(12)).so"
    if FileIO.exists(out) { return out }
    let partial = out + ".\(getpid())"
    for compiler in ["/usr/bin/cc", "/usr/bin/gcc", "/usr/bin/clang", "/opt/swift/usr/bin/clang"] where FileIO.exists(compiler) {
      let r = try? runCommand(compiler, ["-shared", "-fPIC", "-O1", "-o", partial, source, "-ldl", "-lpthread"])
      if r?.status == 0, rename(partial, out) == 0 { return out }
    }
    print("fault shim: no C compiler built \(source)")
    return nil
  }()

  /// The environment that loads the shim with `faults` (UNET_FAULT_* variables).
  public static func environment(_ faults: [String: String]) -> [String: String]? {
    guard let shim else { return nil }
    return faults.merging(["LD_PRELOAD": shim]) { $1 }
  }

  /// Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN), checked once.
  public static let canMount: Bool = {
    guard let dir = tmpfs(kilobytes: 64, label: "mount-probe") else { return false }
    unmount(dir)
    return true
  }()

  /// Whether the fault library could be built.
  public static var haveShim: Bool { shim != nil }

  /// A tmpfs of `kilobytes` mounted on a fresh folder, or nil when mounting is not allowed
  /// (not root, or no CAP_SYS_ADMIN in this container). Unmount with `unmount`.
  public static func tmpfs(kilobytes: Int, label: String) -> String? {
    guard getuid() == 0 else { return nil }
    let dir = TestPaths.temporaryDirectory(label)
    let r = try? runCommand("/bin/mount", ["-t", "tmpfs", "-o", "size=\(kilobytes)k", "tmpfs", dir])
    guard r?.status == 0 else {
      try? FileManager.default.removeItem(atPath: dir)
      return nil
    }
    return dir
  }

  /// Remounts a tmpfs with a new size or read-only (`options` such as "size=4096k" or "ro").
  public static func remount(_ dir: String, _ options: String) throws {
    let r = try runCommand("/bin/mount", ["-o", "remount,\(options)", dir])
    guard r.status == 0 else { throw FileIOError(.ioFailure, path: dir, "remount: \(r.stderr)") }
  }

  public static func unmount(_ dir: String) {
    _ = try? runCommand("/bin/umount", [dir])
    try? FileManager.default.removeItem(atPath: dir)
  }
}
