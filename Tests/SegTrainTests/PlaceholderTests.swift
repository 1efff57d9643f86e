import SegTrain
import Testing

@Test func trainerModuleLinks() {
  #expect(String(describing: SegTrain.self) == "SegTrain")
}
