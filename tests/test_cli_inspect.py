"""The inspection commands: `striate models`, `striate summary`, `striate calc`."""
from striate import models
from striate.cli.main import main


def test_models_lists_every_architecture_with_its_input(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in models.list():
        assert f"\n{name} " in out
    assert "28x28x1" in out and "224x224x3" in out and "32x32x3" in out and "8x8x1" in out


def test_summary_lenet5(capsys):
    assert main(["summary", "lenet5"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 61,706" in out and "features.0" in out and "28x28x6" in out


def test_summary_alexnet_with_input(capsys):
    assert main(["summary", "alexnet", "--input", "224x224x3"]) == 0
    out = capsys.readouterr().out
    assert "55x55x96" in out and "34,944" in out and "62,378,344" in out


def test_summary_options(capsys):
    assert main(["summary", "resnet20", "--num-classes", "100", "--input", "64x64"]) == 0
    out = capsys.readouterr().out
    assert "64x64x3" in out and "6,500" in out  # fc: 64 * 100 + 100


def test_unknown_model_exits_2_with_the_list(capsys):
    assert main(["summary", "resnet500"]) == 2
    err = capsys.readouterr().err
    assert "unknown --model 'resnet500'" in err and "Did you mean 'resnet50'" in err and "vgg16" in err
    assert main(["summary", "ResNet-50"]) == 0  # case, '-' and '_' do not matter


def test_too_small_input_exits_2_naming_the_layer(capsys):
    assert main(["summary", "lenet5", "--input", "8x8x1"]) == 2
    err = capsys.readouterr().err
    assert "too small for lenet5" in err and "features." in err


def test_calc_chain(capsys):
    assert main(["calc", "--input", "224", "--layer", "k=11,s=4,p=2", "--layer", "k=3,s=2"]) == 0
    out = capsys.readouterr().out
    assert "55x55" in out and "Output: 27x27" in out and "19" in out


def test_calc_single_layer_flags(capsys):
    assert main(["calc", "--input", "28", "--kernel", "5", "--padding", "same"]) == 0
    assert "Output: 28x28" in capsys.readouterr().out


def test_calc_impossible_setting_exits_2_with_an_explanation(capsys):
    assert main(["calc", "--input", "5", "--layer", "k=3", "--layer", "k=3,d=4"]) == 2
    captured = capsys.readouterr()
    assert "3x3" in captured.out                                   # the first layer is still shown
    assert "layer 2" in captured.err and "effective size 9x9" in captured.err


def test_calc_bad_syntax_exits_2(capsys):
    assert main(["calc", "--input", "5", "--layer", "x=3"]) == 2
    assert "keys k, s, p, d" in capsys.readouterr().err
    assert main(["calc", "--input", "5"]) == 2
    assert "no layer given" in capsys.readouterr().err
