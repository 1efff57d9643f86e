import ArgumentParser
import SegCore

@main
enum Main {
  /// Parses and runs the command; errors about files and data print as one line
  /// `unet: PATH: problem` with exit status 1, usage errors as argument-parser prints them.
  static func main() async {
    tuneMemoryAllocator()
    do {
      var command = try Unet.parseAsRoot()
      if var asyncCommand = command as? any AsyncParsableCommand {
        try await asyncCommand.run()
      } else {
        try command.run()
      }
    } catch let error as any UserFacingError {
      flushStandardOutput()
      reportError(error)
      Unet.exit(withError: ExitCode.failure)
    } catch {
      flushStandardOutput()
      Unet.exit(withError: error)
    }
  }
}

struct Unet: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "unet",
    abstract: "Biomedical images and label masks → augmented U-Net training shards, and a U-Net trainer.",
    discussion: """
      Pipelines are YAML files (see pipelines/). Every command that draws random numbers takes \
      --seed; the same seed gives the same bytes for any number of workers.
      """,
    version: "0.1.0",
    subcommands: [
      Prepare.self, PreviewCommand.self, Train.self, Predict.self, Export.self, Eval.self, Inspect.self, Info.self, Weights.self,
      Fixtures.self, Bench.self,
    ]
  )
}

/// Prints a user-facing error on stderr as one line prefixed with "unet: ".
func reportError(_ error: any Error) {
  let text: String
  if let e = error as? any UserFacingError {
    text = e.description
  } else {
    text = "\(error)".replacingNewlines()
  }
  printError("unet: \(text)")
}

/// Writes a line to stderr.
func printError(_ line: String) {
  var stderr = StandardError()
  print(line, to: &stderr)
}

struct StandardError: TextOutputStream {
  mutating func write(_ string: String) {
    FileHandleWriter.write(string, fd: 2)
  }
}

enum FileHandleWriter {
  static func write(_ string: String, fd: Int32) {
    var s = string
    s.withUTF8 { buf in
      guard let base = buf.baseAddress else { return }
      var offset = 0
      while offset < buf.count {
        let n = systemWrite(fd, base + offset, buf.count - offset)
        if n <= 0 { break }
        offset += n
      }
    }
  }
}
