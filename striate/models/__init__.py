"""Architecture definitions: LeNet, AlexNet, ZFNet, VGG, NiN, GoogLeNet, ResNet and its plain twins, the
digits CNN, and for where things are: a localiser, a CenterNet-style detector, FCN and U-Net.

Every builder returns a Module that is already built (its parameters exist) for the model's native
input size, and takes ``num_classes``, ``in_channels``, an optional ``input_shape`` override and
``rng`` (seed or Generator for the initialisation). The registry builds by name::

    >>> st.models.list()[:3]
    ['lenet5', 'digits_cnn', 'alexnet']
    >>> model = st.models.get("resnet20", num_classes=100)

An unknown name raises ValueError listing the available ones (with the closest match).
"""
# Import order is registration order, which is the order of `st.models.list()`: by family, oldest first.
from .lenet import DigitsCNN, LeNet5, digits_cnn, lenet5  # isort: skip
from .bncnn import BNCNN, bn_cnn, fashion_cnn, mnist_cnn  # isort: skip
from .alexnet import AlexNet, AlexNetTV, ZFNet, alexnet, alexnet_torchvision, zfnet  # isort: skip
from .vgg import VGG, vgg, vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn, vgg_cifar  # isort: skip
from .nin import NiN, nin  # isort: skip
from .googlenet import GoogLeNet, Inception, googlenet  # isort: skip
from .resnet import (BasicBlock, Bottleneck, CifarResNet, ResNet, ZeroPadShortcut, resnet,  # isort: skip
                     resnet18, resnet20, resnet32, resnet34, resnet44, resnet50, resnet56, resnet101,
                     resnet110, resnet152, resnet_cifar)
from .plain import CifarPlainNet, PlainBlock, plain20, plain32, plain56, plain_cifar  # isort: skip
from .localizer import Localizer, localizer  # isort: skip
from .centernet import CenterNet, centernet  # isort: skip
from .segmentation import FCN, UNet, fcn, unet  # isort: skip
from .registry import ModelInfo, get, info, list_models, register  # isort: skip

list = list_models  # noqa: A001  (the public name st.models.list())

__all__ = [
    "list", "list_models", "get", "info", "register", "ModelInfo",
    "lenet5", "digits_cnn", "mnist_cnn", "fashion_cnn", "bn_cnn", "alexnet", "alexnet_torchvision", "zfnet",
    "vgg", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn", "vgg_cifar", "nin",
    "googlenet",
    "resnet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnet_cifar", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
    "plain_cifar", "plain20", "plain32", "plain56", "CifarPlainNet", "PlainBlock",
    "localizer", "centernet", "fcn", "unet", "Localizer", "CenterNet", "FCN", "UNet",
    "LeNet5", "DigitsCNN", "BNCNN", "AlexNet", "AlexNetTV", "ZFNet", "VGG", "NiN", "GoogLeNet", "Inception",
    "ResNet", "CifarResNet",
    "BasicBlock", "Bottleneck", "ZeroPadShortcut",
]
