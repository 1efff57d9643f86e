import Foundation
import SegCore

/// Where the repository's folders and the shared data are, found from this file's path (the
/// way swift-argument-parser's snapshot helper finds its folder), so tests work from any
/// working directory.
public enum TestPaths {
  /// The repository root (the folder holding Package.swift).
  public static let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
  }()

  /// `fixtures/` in the repository.
  public static var fixtures: String { repositoryRoot + "/fixtures" }

  /// `pipelines/` in the repository.
  public static var pipelines: String { repositoryRoot + "/pipelines" }

  /// `../shared` beside the repository, when present.
  public static var shared: String? {
    let path = URL(fileURLWithPath: repositoryRoot).deletingLastPathComponent().appendingPathComponent("shared").path
    return FileIO.isDirectory(path) ? path : nil
  }

  /// `../shared/data/isbi2012` when present (never copied into the repository).
  public static var isbi2012: String? {
    guard let shared, FileIO.isDirectory(shared + "/data/isbi2012/images") else { return nil }
    return shared + "/data/isbi2012"
  }

  /// The folder the test executable runs from; the `unet` binary is built beside it.
  public static var productsDirectory: String {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    return URL(fileURLWithPath: exe).deletingLastPathComponent().path
  }

  /// The built `unet` executable.
  public static var unetBinary: String { productsDirectory + "/unet" }

  /// A fresh empty temporary folder.
  public static func temporaryDirectory(_ label: String = "test") -> String {
    let path = NSTemporaryDirectory() + "swift-unet-\(label)-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
  }
}
