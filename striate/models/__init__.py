"""Architecture definitions: LeNet, AlexNet, ZFNet, VGG, NiN, GoogLeNet, ResNet."""
