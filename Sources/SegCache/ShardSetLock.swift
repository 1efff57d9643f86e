import SegCore

/// Keeps two `unet prepare` processes from writing one shard folder at once.
///
/// A whole run (and `--merge`) holds `DIR/.unet-prepare.lock`; part i of a distributed run holds
/// `DIR/.unet-prepare.part-i.lock`, so the parts of one run share the folder as they should.
/// Each also checks that no lock of the other kind is held. A second process gets a one-line
/// error naming the holder; nothing of the first run's is touched. In a folder that cannot be
/// written (a read-only mount) no lock is taken: nothing can write there, and a run with
/// nothing to do still succeeds.
public struct ShardSetLock {
  let lock: FileLock?

  static let wholeName = ".unet-prepare.lock"
  static func partName(_ index: Int) -> String { ".unet-prepare.part-\(index).lock" }

  /// The lock of a run that writes `directory` (part `index` of `count`; count 1 is a whole run,
  /// `merging` the merge of a distributed run), held until the value is released.
  public static func acquire(directory: String, part index: Int, of count: Int, merging: Bool = false) throws(CacheError) -> ShardSetLock {
    let whole = directory + "/" + wholeName
    let mine = count > 1 && !merging ? directory + "/" + partName(index) : whole
    let outcome: FileLock.Outcome
    do {
      try FileIO.makeDirectories(directory)
      outcome = try FileLock.acquire(mine)
    } catch {
      throw CacheError(.ioFailure, path: directory, error.message)
    }
    switch outcome {
    case .unwritable: return ShardSetLock(lock: nil)
    case .held(let holder): throw busy(directory, holder)
    case .acquired(let lock):
      if mine != whole, let holder = FileLock.holder(whole) { throw busy(directory, holder) }
      if mine == whole {
        let names = (try? FileIO.listDirectory(directory)) ?? []
        for name in names where name.hasPrefix(".unet-prepare.part-") && name.hasSuffix(".lock") {
          if let holder = FileLock.holder(directory + "/" + name) { throw busy(directory, holder) }
        }
      }
      return ShardSetLock(lock: lock)
    }
  }

  static func busy(_ directory: String, _ holder: String) -> CacheError {
    CacheError(
      .locked, path: directory, "another unet prepare (\(holder)) is writing this folder",
      hint: "wait for it to finish, or give this run another --out")
  }
}
