import SegRender
import Testing

@Suite struct LinePlotTests {
  @Test func niceTicks() {
    #expect(LinePlot.ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    #expect(LinePlot.ticks(0, 1000, count: 4) == [0, 500, 1000])
    #expect(LinePlot.ticks(-3, 7).first == -2)
  }

  @Test func rendersSeriesInTheirColours() {
    let plot = LinePlot(
      title: "loss", xLabel: "step",
      series: [.init(name: "train", color: .blue, points: [(0, 1), (10, 0.5), (20, 0.25)]),
               .init(name: "validation", color: .red, points: [(10, 0.6), (20, 0.4)])],
      logY: true)
    let c = plot.render(width: 300, height: 200)
    #expect(c.width == 300 && c.height == 200)
    var blue = 0
    var red = 0
    for y in 0..<c.height {
      for x in 0..<c.width {
        if c.color(x: x, y: y) == .blue { blue += 1 }
        if c.color(x: x, y: y) == .red { red += 1 }
      }
    }
    #expect(blue > 50 && red > 30)
  }
}

@Suite struct TextTests {
  @Test func fontCoversASCIIAndUnknownCharactersFallBack() {
    #expect(BitmapFont.rows("A") != BitmapFont.rows("B"))
    #expect(BitmapFont.rows("€") == BitmapFont.rows("?"))
    var c = Canvas(width: 30, height: 12)
    c.text("Hi", x: 1, y: 1)
    #expect(c != Canvas(width: 30, height: 12))
    #expect(Canvas.textWidth("Hello") == 30)
  }

  @Test func tickFormatting() {
    #expect(Display.formatTick(5) == "5")
    #expect(Display.formatTick(0.6998307) == "0.6998")
    #expect(Display.formatTick(9.93099) == "9.931")
    #expect(String(fixed: -0.25, decimals: 1) == "-0.3")
    #expect(String(fixed: -0.01, decimals: 1) == "0.0")
    #expect(String(fixed: 3.14159, decimals: 2) == "3.14")
  }
}
