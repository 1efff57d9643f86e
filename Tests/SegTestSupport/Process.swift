import Foundation
import SegCore

/// The result of running a command.
public struct CommandResult: Sendable {
  public var status: Int32
  public var stdout: String
  public var stderr: String

  public var stdoutLines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }
  public var stderrLines: [String] { stderr.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }
}

/// Runs an executable with arguments and returns its exit status and output (as the
/// argument-parser example tests do).
public func runCommand(
  _ executable: String, _ arguments: [String], environment: [String: String]? = nil,
  currentDirectory: String? = nil
) throws -> CommandResult {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: executable)
  process.arguments = arguments
  if let environment {
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
  }
  if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
  // stdout through a pipe read here; stderr into a temporary file, so neither can fill up
  // and block the child while we wait.
  let out = Pipe()
  let errPath = NSTemporaryDirectory() + "swift-unet-stderr-\(UUID().uuidString)"
  _ = FileManager.default.createFile(atPath: errPath, contents: nil)
  defer { try? FileManager.default.removeItem(atPath: errPath) }
  let errHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
  process.standardOutput = out
  process.standardError = errHandle
  try process.run()
  let outData = out.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  try? errHandle.close()
  // FileIO, not FileManager.contents(atPath:), which leaks its buffer for an empty file
  // (swift-foundation; seen under LeakSanitizer).
  let errData = (try? FileIO.read(errPath)) ?? []
  return CommandResult(
    status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
    stderr: String(decoding: errData, as: UTF8.self))
}

/// Runs the built `unet` with arguments.
public func runUnet(_ arguments: [String], environment: [String: String]? = nil, currentDirectory: String? = nil) throws
  -> CommandResult
{
  try runCommand(TestPaths.unetBinary, arguments, environment: environment, currentDirectory: currentDirectory)
}
