import Foundation
import SegCore
import SegTestSupport
import Testing

/// ARCHITECTURE.md's module table, Package.swift's dependency lists and the imports in
/// `Sources/` say the same thing.
@Suite struct ArchitectureTests {
  static func text(_ name: String) throws -> String {
    String(decoding: try FileIO.read(TestPaths.repositoryRoot + "/" + name), as: UTF8.self)
  }

  static func matches(_ pattern: String, in text: String, options: NSRegularExpression.Options = []) throws -> [[String]] {
    let regex = try NSRegularExpression(pattern: pattern, options: options)
    let ns = text as NSString
    return regex.matches(in: text, range: NSRange(location: 0, length: ns.length)).map { m in
      (0..<m.numberOfRanges).map { m.range(at: $0).location == NSNotFound ? "" : ns.substring(with: m.range(at: $0)) }
    }
  }

  /// Module → dependencies, from the rows `| `A`, `B` | `X`, `Y` | … |` of ARCHITECTURE.md.
  static func documented() throws -> [String: Set<String>] {
    var out: [String: Set<String>] = [:]
    for line in try text("ARCHITECTURE.md").split(separator: "\n") where line.hasPrefix("| `") {
      let cells = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
      guard cells.count > 3 else { continue }
      let deps = Set(try matches("`([A-Za-z]+)`", in: cells[2]).map { $0[1] })
      for name in try matches("`([A-Za-z]+)`", in: cells[1]).map({ $0[1] }) { out[name] = deps }
    }
    return out
  }

  /// Target → dependencies for the targets under `Sources/`, from Package.swift.
  static func declared() throws -> [String: Set<String>] {
    let package = try text("Package.swift")
    let starts = try matches(#"(?:\.target|\.executableTarget|systemLibrary)\(\s*(?:name:\s*)?"(\w+)""#, in: package)
    var out: [String: Set<String>] = [:]
    let ns = package as NSString
    let regex = try NSRegularExpression(pattern: #"(?:\.target|\.executableTarget|\.testTarget|systemLibrary)\("#)
    let targetStarts = regex.matches(in: package, range: NSRange(location: 0, length: ns.length)).map(\.range.location)
    for (i, location) in targetStarts.enumerated() {
      let end = i + 1 < targetStarts.count ? targetStarts[i + 1] : ns.length
      let chunk = ns.substring(with: NSRange(location: location, length: end - location))
      guard let name = try matches(#"^[^"]*"(\w+)""#, in: chunk).first?[1],
        starts.contains(where: { $0[1] == name }), FileIO.isDirectory(TestPaths.repositoryRoot + "/Sources/" + name)
      else { continue }
      let list = try matches(#"dependencies:\s*\[([^\]]*)\]"#, in: chunk).first?[1] ?? ""
      // Target names and product names; not the package a product comes from.
      out[name] = Set(try matches(#"(package:\s*)?"([\w-]+)""#, in: list).filter { $0[1].isEmpty }.map { $0[2] })
    }
    return out
  }

  /// Module → the package modules its Swift files import.
  static func imported(_ module: String, among known: Set<String>) throws -> Set<String>? {
    let root = TestPaths.repositoryRoot + "/Sources/" + module
    guard let files = FileManager.default.enumerator(atPath: root)?.compactMap({ $0 as? String }).filter({ $0.hasSuffix(".swift") }),
      !files.isEmpty
    else { return nil }
    var out = Set<String>()
    for file in files {
      for m in try matches(#"^(?:@\w+\s+)*import\s+(\w+)"#, in: try text("Sources/" + module + "/" + file), options: .anchorsMatchLines)
      where known.contains(m[1]) && m[1] != module {
        out.insert(m[1])
      }
    }
    return out
  }

  @Test func packageDependenciesMatchTheArchitectureTable() throws {
    let doc = try Self.documented()
    let package = try Self.declared()
    #expect(package.count >= 20, "found only \(package.keys.sorted()) in Package.swift")
    #expect(Set(doc.keys) == Set(package.keys), "modules only in the table: \(Set(doc.keys).subtracting(package.keys).sorted()); only in Package.swift: \(Set(package.keys).subtracting(doc.keys).sorted())")
    for (name, deps) in package {
      #expect(doc[name] == deps, "\(name): ARCHITECTURE.md says \(doc[name]?.sorted() ?? []), Package.swift \(deps.sorted())")
    }
  }

  @Test func importsMatchPackageDependencies() throws {
    let package = try Self.declared()
    let known = Set(package.keys).union(["ArgumentParser", "Yams"])
    for (name, deps) in package {
      guard let imports = try Self.imported(name, among: known) else { continue }
      #expect(imports == deps, "\(name) imports \(imports.sorted()) but Package.swift lists \(deps.sorted())")
    }
  }
}
