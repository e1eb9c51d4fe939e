package resnet

// For the tests of package resnet_test, which run models through
// resnet/interp (an import cycle from inside package resnet).

// TestModelForMutation is testModel: a small valid int8 model using every
// operator and option the runtime supports.
var TestModelForMutation = testModel
