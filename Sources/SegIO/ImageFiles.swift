import SegCore

/// Finding image files in folders.
public enum ImageFiles {
  /// Image files (by extension, case-insensitive: png, jpg, jpeg, tif, tiff, npy) in `folder`,
  /// and in its subfolders when `recursive`, sorted by path. Hidden entries are skipped.
  public static func list(_ folder: String, recursive: Bool = false) throws(FileIOError) -> [String] {
    var out: [String] = []
    for name in try FileIO.listDirectory(folder) where !name.hasPrefix(".") {
      let path = folder.hasSuffix("/") ? folder + name : folder + "/" + name
      if FileIO.isDirectory(path) {
        if recursive { out += try list(path, recursive: true) }
      } else if isImageName(name) {
        out.append(path)
      }
    }
    return out.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
  }

  /// Whether the name's extension is one of the image extensions.
  public static func isImageName(_ name: String) -> Bool {
    guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return false }
    return ImageFormat.knownExtensions.contains(name[name.index(after: dot)...].lowercased())
  }

  /// The file name without folder and without its last extension ("a/b/img_01.tif" → "img_01").
  public static func stem(_ path: String) -> String {
    let name = path.split(separator: "/", omittingEmptySubsequences: true).last.map(String.init) ?? path
    guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return name }
    return String(name[..<dot])
  }
}
