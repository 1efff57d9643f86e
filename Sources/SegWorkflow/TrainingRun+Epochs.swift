import Dispatch
import Foundation
import SegCache
import SegCore
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// How a run gets fresh augmentations for every epoch: a way to make epoch e's shard set (the
/// pipeline's draws for epoch e, as `unet prepare --epoch e` makes them) in a folder.
public struct FreshAugmentation: Sendable {
  /// Makes epoch e's shards in `directory`; blocking, called off the training thread.
  public var prepare: @Sendable (_ epoch: Int, _ directory: String) throws -> Void

  public init(prepare: @escaping @Sendable (_ epoch: Int, _ directory: String) throws -> Void) {
    self.prepare = prepare
  }
}

/// The fresh-epoch shard sets of a run (RUN/epochs/epoch-NNNNNN): epoch e + 1 is prepared in the
/// background while epoch e trains, older ones are removed (at most `keep` on disk). Epoch 0 is
/// the shard set the run was started with. Preparation is deterministic and crash-safe, so a
/// resumed run finds or remakes exactly the sets it trained on.
final class EpochShards: Sendable {
  let root: String
  let keep: Int
  let fresh: FreshAugmentation
  private let queue = DispatchQueue(label: "swift-unet.fresh-epochs", qos: .utility)
  /// Per requested epoch: nil while it is being made, then the error message or "" when done.
  private let jobs = Mutex<[Int: String?]>([:])

  init(runDirectory: String, keep: Int, fresh: FreshAugmentation) {
    root = runDirectory + "/epochs"
    self.keep = keep
    self.fresh = fresh
  }

  func directory(_ epoch: Int) -> String {
    let s = String(epoch)
    return root + "/epoch-" + String(repeating: "0", count: max(0, 6 - s.count)) + s
  }

  /// Starts making epoch e in the background (once).
  func request(_ epoch: Int) {
    guard epoch >= 1 else { return }
    let started = jobs.withLock { j -> Bool in
      if j[epoch] != nil { return false }
      j[epoch] = .some(nil)
      return true
    }
    guard started else { return }
    let dir = directory(epoch), fresh = self.fresh
    queue.async { [self] in
      var outcome = ""
      do {
        try FileIO.makeDirectories(dir)
        try fresh.prepare(epoch, dir)
      } catch {
        outcome = "\(error)".isEmpty ? "failed" : "\(error)"
      }
      self.jobs.withLock { $0[epoch] = .some(outcome) }
    }
  }

  /// Epoch e's shard set, waiting for it to be made; asks for e + 1 and removes the sets before
  /// the last `keep − 1`.
  func set(_ epoch: Int) throws -> ShardSet {
    request(epoch)
    request(epoch + 1)
    while true {
      let state = jobs.withLock { $0[epoch] ?? .some(nil) }
      if case .some(let message?) = state {
        guard message.isEmpty else {
          throw WorkflowError(.badShards, path: directory(epoch), "preparing fresh augmentations for epoch \(epoch) failed: \(message)")
        }
        break
      }
      usleep(20_000)
    }
    // Keep the set in use, the one being made, and keep − 2 before them (cleanup only: a set
    // that cannot be removed costs disk, not correctness).
    for old in max(1, epoch - keep - 8)..<max(1, epoch + 2 - keep) where FileIO.exists(directory(old)) {
      try? FileManager.default.removeItem(atPath: directory(old))
    }
    return try ShardSet(directory: directory(epoch))
  }
}
