import Foundation
import SegCore
import SegWorkflow

#if canImport(Glibc)
  import Glibc
#endif

/// Fresh augmentations for `unet train`: epoch e's shards are made by this same program,
/// `unet prepare PIPELINE --epoch e --out DIR --workers 1`, as a child process at a lower
/// priority, so the pipeline's draws never share a thread (or a crash) with training. The
/// child's output goes to DIR.log, and it dies with this process (an orphaned child would hold
/// the epoch folder's lock against the resumed run).
enum FreshEpochs {
  /// The path of the running executable.
  static var executable: String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard n > 0 else { return CommandLine.arguments.first ?? "unet" }
    return String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  static func augmentation(pipeline: String, source: String?, maxYamlNodes: Int) -> FreshAugmentation {
    let program = executable
    return FreshAugmentation { epoch, directory in
      var arguments = ["prepare", pipeline, "--epoch", String(epoch), "--out", directory, "--workers", "1", "--quiet",
                       "--max-yaml-nodes", String(maxYamlNodes)]
      if let source { arguments += ["--source", source] }
      let logPath = directory + ".log"
      guard FileManager.default.createFile(atPath: logPath, contents: nil) else {
        throw WorkflowError(.badShards, path: logPath, "cannot create the log of unet prepare --epoch \(epoch)")
      }
      let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
      defer { try? log.close() }
      let child = Process()
      child.executableURL = URL(fileURLWithPath: program)
      child.arguments = arguments
      // The child ends with this process, whatever ends it (see dieWithParentIfAsked).
      var environment = ProcessInfo.processInfo.environment
      environment[parentProcessVariable] = String(getpid())
      child.environment = environment
      child.standardOutput = log
      child.standardError = log
      try child.run()
      _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(child.processIdentifier), 10)
      child.waitUntilExit()
      guard child.terminationStatus == 0 else {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        let last = text.split(separator: "\n").last.map(String.init) ?? "exit status \(child.terminationStatus)"
        throw WorkflowError(.badShards, path: directory, "unet prepare --epoch \(epoch) failed: \(last) (log: \(logPath))")
      }
    }
  }
}
