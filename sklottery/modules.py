"""Torch modules used by sklottery, and a registry to select them by name.

Every module here takes the number of input features and of classes as
keyword arguments ``n_features`` and ``n_classes`` (the estimator fills them
in from the data), returns *logits*, and initialises its weights with the
scheme of the paper it comes from (Glorot normal, as Frankle & Carbin 2019;
Kaiming normal with OpenLTH's batch norm initialisation for ResNet-20 and
VGG-16, as Frankle et al. 2020).

Prunable parameters are the ``weight`` tensors of ``nn.Linear`` and
``nn.Conv2d`` layers, but for those a module lists in its attribute
``prunable_exclude``; biases (and batch norm parameters) are never pruned.
The *last* Linear/Conv2d layer in module order is the output layer (pruned
at ``output_pruning_rate`` unless excluded).

Modules
-------
``MLP`` ('mlp', 'lenet300_100')
    Fully connected; LeNet-300-100 with the default sizes.
``Conv2``, ``Conv4``, ``Conv6`` ('conv2', 'conv4', 'conv6')
    The VGG-style CIFAR-10 networks of Frankle & Carbin (2019), Figure 2:
    3x3 convolutions (padding 1, stride 1), 2x2 max pooling (stride 2), then
    fully connected layers 256, 256, ``n_classes``.
``LeNet5`` ('lenet5')
    LeCun et al. (1998): conv5x5(6), pool, conv5x5(16), pool, fc 120, 84,
    ``n_classes`` (ReLU and max pooling instead of the original scaled tanh
    and subsampling, as is usual today).
``ResNet20`` ('resnet20'), ``VGG16`` ('vgg16')
    The deep CIFAR-10 networks of Frankle et al. (2020), as OpenLTH builds
    them: He et al.'s (2016) ResNet-20 and a batch-normalised VGG-16
    (Simonyan & Zisserman 2015) with one fc layer. VGG-16's fc layer is not
    prunable; structured pruning and compaction do not apply to either.

The convolutional modules take images, but also accept the flat
``(n_samples, C*H*W)`` arrays that scikit-learn pipelines and model
selection tools pass around; see :class:`ImageClassifierModule`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "MLP",
    "ImageClassifierModule",
    "Conv2",
    "Conv4",
    "Conv6",
    "LeNet5",
    "ResNet20",
    "VGG16",
    "MODULES",
    "PRUNABLE_LAYER_TYPES",
    "excluded_weight_names",
    "get_module_class",
    "glorot_init_",
    "infer_input_shape",
    "layer_kinds",
    "multiply_adds",
    "prunable_parameter_names",
]

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "logistic": nn.Sigmoid,
    "identity": nn.Identity,
}

#: Layer types whose ``weight`` is prunable.
PRUNABLE_LAYER_TYPES = (nn.Linear, nn.Conv2d)


def glorot_init_(module: nn.Module) -> nn.Module:
    """Glorot-normal weights and zero biases for every Linear/Conv2d layer.

    See Also
    --------
    MLP : Initialised with it.

    References
    ----------
    .. [1] Glorot, X. and Bengio, Y. (2010). Understanding the Difficulty of
       Training Deep Feedforward Neural Networks. AISTATS.
    .. [2] Frankle, J. and Carbin, M. (2019). The Lottery Ticket Hypothesis:
       Finding Sparse, Trainable Neural Networks. ICLR. arXiv:1803.03635.
    """
    for layer in module.modules():
        if isinstance(layer, PRUNABLE_LAYER_TYPES):
            nn.init.xavier_normal_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


class MLP(nn.Module):
    """Fully connected network, LeNet-300-100 with the default sizes.

    Parameters
    ----------
    n_features : int
        Number of input features.
    n_classes : int
        Number of output logits.
    hidden_layer_sizes : tuple of int, default=(300, 100)
        Width of each hidden layer; ``()`` gives a linear model.
    activation : {'relu', 'tanh', 'logistic', 'identity'}, default='relu'
        Non-linearity after every hidden layer.
    dropout : float, default=0.0
        Dropout probability after every hidden activation.

    See Also
    --------
    sklottery.LotteryTicketClassifier : Uses it when ``module=None``.
    get_module_class : Looks modules up by name.

    References
    ----------
    .. [1] LeCun, Y., Bottou, L., Bengio, Y. and Haffner, P. (1998).
       Gradient-Based Learning Applied to Document Recognition. Proceedings of
       the IEEE, 86(11), 2278-2324.
    .. [2] Frankle, J. and Carbin, M. (2019). The Lottery Ticket Hypothesis:
       Finding Sparse, Trainable Neural Networks. ICLR. arXiv:1803.03635.
    .. [3] Glorot, X. and Bengio, Y. (2010). Understanding the Difficulty of
       Training Deep Feedforward Neural Networks. AISTATS.
    """

    def __init__(self, n_features, n_classes, hidden_layer_sizes=(300, 100),
                 activation="relu", dropout=0.0):
        super().__init__()
        sizes = [int(n_features), *map(int, hidden_layer_sizes)]
        layers = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            layers.append(nn.Linear(n_in, n_out))
            layers.append(_ACTIVATIONS[activation]())
            if dropout:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(sizes[-1], int(n_classes)))
        self.layers = nn.Sequential(*layers)
        glorot_init_(self)

    def forward(self, X):
        return self.layers(X.flatten(1))


# --------------------------------------------------------------------------
# Convolutional image classifiers
# --------------------------------------------------------------------------

def _isqrt_exact(n):
    """``k`` with ``k * k == n``, or ``None``."""
    if n < 1:
        return None
    k = math.isqrt(n)
    return k if k * k == n else None


def infer_input_shape(n_features):
    """Guess the ``(C, H, W)`` image shape of ``n_features`` flat features.

    Only *square* images with 1 or 3 channels are inferred:

    * ``n_features == k*k`` gives ``(1, k, k)`` (grey scale, e.g. 784 -> MNIST
      ``(1, 28, 28)``);
    * ``n_features == 3*k*k`` gives ``(3, k, k)`` (RGB, e.g. 3072 -> CIFAR-10
      ``(3, 32, 32)``).

    A positive integer can never be both (``k*k == 3*m*m`` would make
    ``sqrt(3)`` rational), so these two rules never conflict. The ambiguity
    that remains is with *other* shapes of the same size (a 1-channel
    ``3 x k*k`` strip, a non-square image, 4 channels, ...); they are never
    guessed: pass ``input_shape`` explicitly for them.

    Raises
    ------
    ValueError
        If ``n_features`` is neither ``k*k`` nor ``3*k*k``.
    """
    n = _as_positive_int(n_features, "n_features")
    k = _isqrt_exact(n)
    if k is not None:
        return (1, k, k)
    if n % 3 == 0:
        k = _isqrt_exact(n // 3)
        if k is not None:
            return (3, k, k)
    raise ValueError(
        f"Cannot infer the image shape from n_features={n}: it is neither a "
        "perfect square (1-channel k x k image) nor 3 times a perfect square "
        "(3-channel k x k image). Pass input_shape=(C, H, W) with "
        f"C * H * W == {n} (module__input_shape=(C, H, W) on the estimator)."
    )


def _as_positive_int(value, name):
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a positive integer, got {value!r}.")
    try:
        as_int = int(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be a positive integer, got {value!r}."
        ) from None
    if as_int != value or as_int < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return as_int


def _check_input_shape(input_shape, n_features):
    """Validate ``input_shape`` against ``n_features``; return ``(C, H, W)``."""
    if input_shape is None:
        return infer_input_shape(n_features)
    try:
        dims = tuple(input_shape)
    except TypeError:
        raise TypeError(
            f"input_shape must be a (C, H, W) tuple, got {input_shape!r}."
        ) from None
    if len(dims) != 3:
        raise ValueError(
            f"input_shape must be a (C, H, W) tuple of 3 positive integers, "
            f"got {input_shape!r}."
        )
    dims = tuple(_as_positive_int(d, "each entry of input_shape")
                 for d in dims)
    size = dims[0] * dims[1] * dims[2]
    if n_features is not None and size != int(n_features):
        raise ValueError(
            f"input_shape={dims} holds C*H*W = {size} values but "
            f"n_features={int(n_features)}; they must be equal."
        )
    return dims


def _check_activation(activation):
    if activation not in _ACTIVATIONS:
        raise ValueError(
            f"Unknown activation {activation!r}; choose one of "
            f"{sorted(_ACTIVATIONS)}."
        )
    return _ACTIVATIONS[activation]


def _check_dropout(dropout):
    try:
        p = float(dropout)
    except (TypeError, ValueError):
        raise TypeError(f"dropout must be a float, got {dropout!r}.") from None
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
    return p


def _spatial_size(plan, height, width):
    """Feature map size after ``plan``, or the index of the step emptying it.

    Returns ``(h, w, None)`` on success and ``(h, w, i)`` when step ``i``
    leaves an empty (``< 1``) feature map. Mirrors ``nn.Conv2d`` (stride 1)
    and ``nn.MaxPool2d`` (``ceil_mode=False``) arithmetic exactly.
    """
    h, w = height, width
    for i, step in enumerate(plan):
        if step[0] == "conv":
            _, _, k, (ph, pw) = step
            h, w = h + 2 * ph - k + 1, w + 2 * pw - k + 1
        else:  # ("pool", k): kernel k, stride k
            k = step[1]
            h, w = (h - k) // k + 1 if h >= k else 0, \
                (w - k) // k + 1 if w >= k else 0
        if h < 1 or w < 1:
            return h, w, i
    return h, w, None


def _describe(step):
    if step[0] == "conv":
        _, out, k, pad = step
        return f"conv{k}x{k}({out}, padding={pad})"
    return f"maxpool{step[1]}"


class ImageClassifierModule(nn.Module):
    """Base class: a stack of conv/pool layers followed by fc layers.

    Subclasses set :attr:`fc_sizes` and implement :meth:`conv_plan`.

    Parameters
    ----------
    n_features : int or None
        Number of input features, ``C * H * W``. May be ``None`` when
        ``input_shape`` is given.
    n_classes : int
        Number of output logits.
    input_shape : tuple (C, H, W), default=None
        Image shape. ``None`` infers it from ``n_features`` (square images
        with 1 or 3 channels only, see :func:`infer_input_shape`); otherwise
        ``C * H * W`` must equal ``n_features``. On the estimator, pass it as
        ``module__input_shape=(C, H, W)``.
    dropout : float in [0, 1), default=0.0
        Dropout probability applied after the activation of every *hidden
        fully connected* layer (not after convolutions, nor on the logits),
        as in Frankle & Carbin's dropout experiments. Active in train mode
        only (``module.train()``), the identity in eval mode.
    activation : {'relu', 'tanh', 'logistic', 'identity'}, default='relu'
        Non-linearity after every convolution and hidden fc layer.
    widths : sequence of int, default=None
        Other widths for the same architecture: the output channels of every
        convolution, then the width of every hidden fc layer, in order. None
        keeps the class's widths. Used for the smaller dense architecture a
        structured ticket defines (Liu et al.'s scratch training).

    See Also
    --------
    Conv2 : Conv-2 of Frankle & Carbin (also ``Conv4``, ``Conv6``).
    LeNet5 : LeNet-5 of LeCun et al.

    Notes
    -----
    ``forward`` accepts ``(n, C*H*W)`` flat rows (reshaped in C, H, W order,
    i.e. ``X.reshape(n, C, H, W)`` / NumPy C order), ``(n, C, H, W)`` images,
    or ``(n, H, W)`` when ``C == 1``. Channels-last images must be
    transposed to channels-first by the caller.

    Attributes
    ----------
    input_shape : tuple (C, H, W)
        The resolved image shape.
    features : nn.Sequential
        The convolution/pooling stack.
    classifier : nn.Sequential
        The fully connected layers; its last ``nn.Linear`` is the output layer.
    n_flat : int
        Number of features entering the first fc layer.

    References
    ----------
    .. [1] Frankle, J. and Carbin, M. (2019). The Lottery Ticket Hypothesis:
       Finding Sparse, Trainable Neural Networks. ICLR. arXiv:1803.03635.
    """

    #: Widths of the hidden fully connected layers (the output layer is added).
    fc_sizes: tuple = ()

    def __init__(self, n_features, n_classes, input_shape=None, dropout=0.0,
                 activation="relu", widths=None):
        super().__init__()
        shape = _check_input_shape(input_shape, n_features)
        act = _check_activation(activation)
        p = _check_dropout(dropout)
        n_classes = _as_positive_int(n_classes, "n_classes")
        c, h, w = shape

        self.input_shape = shape
        self.n_features = c * h * w
        self.n_classes = n_classes
        self.dropout = p
        self.activation = activation
        self._build(act, p, widths)

    def _build(self, act, p, widths):
        """Make :attr:`features` and :attr:`classifier` (and :attr:`n_flat`)
        and initialise them; ``act`` is the activation class, ``p`` the
        dropout probability."""
        c, h, w = self.input_shape
        n_classes = self.n_classes
        plan = self.conv_plan(h, w)
        fc_sizes = tuple(self.fc_sizes)
        if widths is not None:
            plan, fc_sizes = self._with_widths(plan, fc_sizes, widths)
        out_h, out_w = self._check_plan(plan)

        layers = []
        in_ch = c
        for step in plan:
            if step[0] == "conv":
                _, out_ch, k, pad = step
                layers.append(nn.Conv2d(in_ch, out_ch, k, padding=pad))
                layers.append(act())
                in_ch = out_ch
            else:
                layers.append(nn.MaxPool2d(step[1], stride=step[1]))
        self.features = nn.Sequential(*layers)
        self.n_flat = in_ch * out_h * out_w

        fc = []
        n_in = self.n_flat
        for n_out in fc_sizes:
            fc.append(nn.Linear(n_in, n_out))
            fc.append(act())
            if p > 0:
                fc.append(nn.Dropout(p))
            n_in = n_out
        fc.append(nn.Linear(n_in, n_classes))
        self.classifier = nn.Sequential(*fc)
        glorot_init_(self)

    @classmethod
    def conv_plan(cls, height, width):
        """List of ``('conv', out_channels, kernel, (pad_h, pad_w))`` and
        ``('pool', kernel)`` steps for an input of ``height x width``."""
        raise NotImplementedError

    def _check_plan(self, plan):
        """``(H, W)`` after ``plan``; a ValueError when the input is too small."""
        shape = self.input_shape
        out_h, out_w, failed = _spatial_size(plan, shape[1], shape[2])
        if failed is not None:
            raise ValueError(
                f"input_shape={shape} is too small for "
                f"{type(self).__name__}: the feature map becomes "
                f"{out_h}x{out_w} after {_describe(plan[failed])} (step "
                f"{failed + 1} of {len(plan)} in the conv stack); "
                f"{type(self).__name__} needs H and W of at least "
                f"{self._min_side()}."
            )
        return out_h, out_w

    @staticmethod
    def _with_widths(plan, fc_sizes, widths):
        """``plan`` and ``fc_sizes`` with the widths replaced, in layer order."""
        widths = [int(w) for w in widths]
        n_conv = sum(step[0] == "conv" for step in plan)
        if len(widths) != n_conv + len(fc_sizes) or min(widths, default=1) < 1:
            raise ValueError(
                f"widths must give {n_conv} convolution widths and {len(fc_sizes)} hidden "
                f"fc widths (all >= 1), got {widths}.")
        it = iter(widths[:n_conv])
        plan = [("conv", next(it), *step[2:]) if step[0] == "conv" else step
                for step in plan]
        return plan, tuple(widths[n_conv:])

    @classmethod
    def _min_side(cls, limit=4096):
        """Smallest square side the conv stack accepts (for error messages)."""
        for side in range(1, limit + 1):
            if _spatial_size(cls.conv_plan(side, side), side, side)[2] is None:
                return side
        return limit  # pragma: no cover

    def _to_images(self, X):
        c, h, w = self.input_shape
        if X.dim() == 2 and X.shape[1] == self.n_features:
            return X.reshape(X.shape[0], c, h, w)
        if X.dim() == 4 and tuple(X.shape[1:]) == self.input_shape:
            return X
        if X.dim() == 3 and c == 1 and tuple(X.shape[1:]) == (h, w):
            return X.unsqueeze(1)
        raise ValueError(
            f"{type(self).__name__} expects input of shape (n, {self.n_features})"
            f" or (n, {c}, {h}, {w}) (input_shape={self.input_shape}), got "
            f"{tuple(X.shape)}."
        )

    def forward(self, X):
        X = self._to_images(X)
        return self.classifier(self.features(X).flatten(1))

    def extra_repr(self):
        return f"input_shape={self.input_shape}"


def _vgg_plan(channels):
    """3x3 'same' convolutions; ``'M'`` is a 2x2 max pool (stride 2)."""
    return [("pool", 2) if ch == "M" else ("conv", ch, 3, (1, 1))
            for ch in channels]


class _VGGLike(ImageClassifierModule):
    """Frankle & Carbin's Conv-N family: :attr:`channels` then fc 256, 256."""

    fc_sizes = (256, 256)
    #: Output channels of each 3x3 convolution; ``'M'`` is a 2x2 max pool.
    channels: tuple = ()

    @classmethod
    def conv_plan(cls, height, width):
        return _vgg_plan(cls.channels)


class Conv2(_VGGLike):
    """Conv-2 of Frankle & Carbin (2019): 64, 64, pool; fc 256, 256, out.

    See :class:`ImageClassifierModule` for the parameters. On CIFAR-10
    (3x32x32) it has 38,592 conv and 4,262,400 fc weights (paper: 4.3M in
    all, 38K conv).

    See Also
    --------
    Conv4 : Four convolutions.
    Conv6 : Six convolutions.

    References
    ----------
    .. [1] Frankle, J. and Carbin, M. (2019). The Lottery Ticket Hypothesis:
       Finding Sparse, Trainable Neural Networks. ICLR. arXiv:1803.03635.
    """

    channels = (64, 64, "M")


class Conv4(_VGGLike):
    """Conv-4 of Frankle & Carbin (2019): 64, 64, pool, 128, 128, pool;
    fc 256, 256, out.

    See :class:`ImageClassifierModule` for the parameters. On CIFAR-10 it
    has 259,776 conv and 2,165,248 fc weights (paper: 2.4M in all, 260K
    conv).

    See Also
    --------
    Conv2 : Two convolutions.
    Conv6 : Six convolutions.

    References
    ----------
    .. [1] Frankle, J. and Carbin, M. (2019). The Lottery Ticket Hypothesis:
       Finding Sparse, Trainable Neural Networks. ICLR. arXiv:1803.03635.
    """

    channels = (64, 64, "M", 128, 128, "M")


class Conv6(_VGGLike):
    """Conv-6 of Frankle & Carbin (2019): 64, 64, pool, 128, 128, pool,
    256, 256, pool; fc 256, 256, out.

    See :class:`ImageClassifierModule` for the parameters. On CIFAR-10 it
    has 1,144,512 conv and 1,116,672 fc weights, 2,261,184 in all. The
    paper's Figure 2 gives 1.1M conv (matches) but 1.7M in all, which no
    reading of the stated architecture reproduces (its Conv-2 and Conv-4
    totals do match this construction).

    See Also
    --------
    Conv2 : Two convolutions.
    Conv4 : Four convolutions.

    References
    ----------
    .. [1] Frankle, J. and Carbin, M. (2019). The Lottery Ticket Hypothesis:
       Finding Sparse, Trainable Neural Networks. ICLR. arXiv:1803.03635.
    """

    channels = (64, 64, "M", 128, 128, "M", 256, 256, "M")


class LeNet5(ImageClassifierModule):
    """LeNet-5 (LeCun et al., 1998) with ReLU and max pooling.

    conv5x5(6), act, maxpool2, conv5x5(16), act, maxpool2, fc 120, act,
    fc 84, act, fc ``n_classes``.

    Padding rule: the first convolution is padded by 2 on both sides
    (``padding=2``) when the image is smaller than 32 in height or width,
    and unpadded (``padding=0``, the original LeNet-5 on 32x32 inputs)
    otherwise. Both MNIST (28x28) and 32x32 inputs therefore end in
    16x5x5 = 400 features before the fc layers. The second convolution is
    never padded. Images need H and W of at least 12.

    See :class:`ImageClassifierModule` for the parameters.

    See Also
    --------
    MLP : LeNet-300-100 with the default sizes.

    References
    ----------
    .. [1] LeCun, Y., Bottou, L., Bengio, Y. and Haffner, P. (1998).
       Gradient-Based Learning Applied to Document Recognition. Proceedings of
       the IEEE, 86(11), 2278-2324.
    """

    fc_sizes = (120, 84)

    @classmethod
    def conv_plan(cls, height, width):
        pad = 2 if min(height, width) < 32 else 0
        return [("conv", 6, 5, (pad, pad)), ("pool", 2),
                ("conv", 16, 5, (0, 0)), ("pool", 2)]


# --------------------------------------------------------------------------
# Deep batch-normalised networks (OpenLTH's CIFAR-10 models)
# --------------------------------------------------------------------------

def _openlth_init_(module):
    """OpenLTH's default initialisation of its CIFAR-10 networks, in place.

    Kaiming-normal weights (fan-in, ReLU gain) for every Linear/Conv2d layer,
    their biases left at PyTorch's default; batch norm weights uniform in
    [0, 1) and biases zero (OpenLTH's ``model_init='kaiming_normal'``,
    ``batchnorm_init='uniform'``).
    """
    for layer in module.modules():
        if isinstance(layer, PRUNABLE_LAYER_TYPES):
            nn.init.kaiming_normal_(layer.weight)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.uniform_(layer.weight, 0.0, 1.0)
            nn.init.zeros_(layer.bias)
    return module


class _BatchNormImageModule(ImageClassifierModule):
    """A deep batch-normalised network: fixed widths, no hidden fc layer.

    Subclasses implement :meth:`_layers`, which makes :attr:`features` (ending
    in global average pooling), :attr:`classifier` (the one fc layer) and
    :attr:`n_flat`; initialisation is OpenLTH's (:func:`_openlth_init_`).
    """

    def _build(self, act, p, widths):
        name = type(self).__name__
        if p > 0:
            raise ValueError(
                f"{name} has no hidden fully connected layer for dropout={p} to follow "
                "(dropout acts after hidden fc layers); use dropout=0.")
        if widths is not None:
            raise ValueError(
                f"widths does not apply to {name}: its widths are fixed (structured "
                "pruning, whose smaller architectures widths describes, does not apply "
                "to batch-normalised networks).")
        self._layers(act)
        _openlth_init_(self)

    def _layers(self, act):
        raise NotImplementedError


class _BasicBlock(nn.Module):
    """He et al.'s basic residual block: two 3x3 conv + batch norm.

    ``act(bn2(conv2(act(bn1(conv1(x))))) + shortcut(x))``; ``conv1`` has
    stride ``stride``. The shortcut is the identity, or a 1x1 convolution
    (same stride) and batch norm where the shape changes. No conv has a bias
    (batch norm follows each).
    """

    def __init__(self, in_ch, out_ch, stride, act):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.act1 = act()
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_ch))
        else:
            self.shortcut = nn.Identity()
        self.act2 = act()

    def forward(self, x):
        out = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.act2(out + self.shortcut(x))


class ResNet20(_BatchNormImageModule):
    """ResNet-20 for CIFAR-10 (He et al., 2016), as Frankle et al. (2020) prune it.

    conv3x3(16) + batch norm + act; three stages of three basic residual
    blocks (:class:`_BasicBlock`) of 16, 32 and 64 channels, the first block
    of stages 2 and 3 halving H and W (stride 2) with a 1x1 conv + batch norm
    projection shortcut (the other shortcuts are the identity); global
    average pooling; fc ``n_classes``. Convolutions have no bias.

    On CIFAR-10 (3x32x32, 10 classes) it has 272,474 parameters (OpenLTH's
    ``cifar_resnet_20``): 270,256 conv weights (of which 2,560 in the two
    projection shortcuts), 640 fc weights and 10 biases, 1,568 batch norm
    parameters.

    Every convolution (shortcuts included) and the fc layer are prunable, as
    in OpenLTH (``prunable_layer_names``: every Conv2d/Linear weight; its
    ResNet-20 ignores no layer); batch norm parameters and biases are not.
    The fc layer is the output layer (pruned at ``output_pruning_rate``).
    OpenLTH ranks every layer, fc included, under one global threshold; the
    closest here is ``pruning_scope='global'`` with
    ``output_pruning_rate=pruning_rate`` (the fc then loses the same
    fraction, ranked on its own).

    Initialisation as OpenLTH: Kaiming-normal conv/fc weights, batch norm
    weights uniform in [0, 1), batch norm biases zero.

    Parameters are those of :class:`ImageClassifierModule`; images need H
    and W of at least 8 (the last stage then sees 2x2 maps), with 1 or 3
    (or any number of) channels. ``dropout`` must be 0 (there is no hidden
    fc layer) and ``widths`` None. The global average pooling makes the fc
    layer's size independent of the image size.

    Structured pruning (``pruning_granularity='neuron'``/``'filter'``) and
    compaction (``get_compact_module``, ``export(format='compact')``) do not
    apply (residual connections, batch norm): they raise a ValueError;
    ``predict`` runs the masked network.

    See Also
    --------
    VGG16 : The other deep network of Frankle et al. (2020).

    References
    ----------
    .. [1] He, K., Zhang, X., Ren, S. and Sun, J. (2016). Deep Residual
       Learning for Image Recognition. CVPR. arXiv:1512.03385.
    .. [2] Frankle, J., Dziugaite, G. K., Roy, D. M. and Carbin, M. (2020).
       Linear Mode Connectivity and the Lottery Ticket Hypothesis. ICML.
       arXiv:1912.05671.
    .. [3] He, K., Zhang, X., Ren, S. and Sun, J. (2015). Delving Deep into
       Rectifiers: Surpassing Human-Level Performance on ImageNet
       Classification. ICCV. arXiv:1502.01852.
    """

    #: Output channels of the three stages.
    stage_widths = (16, 32, 64)
    #: Basic blocks per stage (depth 6 * 3 + 2 = 20).
    blocks_per_stage = 3
    #: Smallest H and W.
    min_side = 8

    def _layers(self, act):
        c, h, w = self.input_shape
        if min(h, w) < self.min_side:
            raise ValueError(
                f"input_shape={self.input_shape} is too small for {type(self).__name__}: "
                f"it needs H and W of at least {self.min_side} (two stride-2 stages).")
        in_ch = self.stage_widths[0]
        layers = [nn.Conv2d(c, in_ch, 3, padding=1, bias=False), nn.BatchNorm2d(in_ch),
                  act()]
        for stage, width in enumerate(self.stage_widths):
            for block in range(self.blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(_BasicBlock(in_ch, width, stride, act))
                in_ch = width
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self.n_flat = in_ch
        self.classifier = nn.Sequential(nn.Linear(in_ch, self.n_classes))


class VGG16(_BatchNormImageModule):
    """VGG-16 for CIFAR-10 with batch norm, as Frankle et al. (2020) prune it.

    Simonyan & Zisserman's (2015) configuration D of 3x3 convolutions
    (padding 1), 64, 64, pool, 128, 128, pool, 256, 256, 256, pool, 512,
    512, 512, pool, 512, 512, 512, each followed by batch norm and the
    activation, pools 2x2 (stride 2); then OpenLTH's CIFAR classifier:
    average pooling to 1x1 and one fc layer 512 -> ``n_classes`` (no hidden
    fc layers). Convolutions have biases.

    On CIFAR-10 (3x32x32, 10 classes) it has 14,728,266 parameters
    (OpenLTH's ``cifar_vgg_16``): 14,710,464 conv weights, 4,224 conv
    biases, 8,448 batch norm parameters, 5,120 fc weights and 10 biases.

    The 13 convolutions are prunable; the fc (output) layer is not
    (``prunable_exclude``): OpenLTH's VGG-16 prunes every Conv2d/Linear
    weight but ``fc.weight`` (its default ``pruning_layers_to_ignore``).
    Batch norm parameters and biases are never pruned. No layer is of kind
    ``'output'``, so ``output_pruning_rate`` does not apply; all convolutions
    are pruned at ``conv_pruning_rate`` (OpenLTH: one global rate,
    ``pruning_scope='global'``).

    Initialisation as OpenLTH: Kaiming-normal conv/fc weights, batch norm
    weights uniform in [0, 1), batch norm biases zero.

    Parameters are those of :class:`ImageClassifierModule`; images need H
    and W of at least 16 (four poolings). OpenLTH averages the 2x2 maps of a
    32x32 input (``AvgPool2d(2)``); here the pooling is global, the same
    there and defined for every size. Under 32x32 the last stage sees 1x1
    maps, where batch norm cannot train on a batch of a single sample:
    choose ``batch_size`` so that no batch has one. ``dropout`` must be 0
    and ``widths`` None.

    Structured pruning and compaction do not apply (batch norm): they raise
    a ValueError; ``predict`` runs the masked network.

    See Also
    --------
    ResNet20 : The other deep network of Frankle et al. (2020).
    Conv6 : Frankle & Carbin's (2019) smaller VGG-style network.

    References
    ----------
    .. [1] Simonyan, K. and Zisserman, A. (2015). Very Deep Convolutional
       Networks for Large-Scale Image Recognition. ICLR. arXiv:1409.1556.
    .. [2] Frankle, J., Dziugaite, G. K., Roy, D. M. and Carbin, M. (2020).
       Linear Mode Connectivity and the Lottery Ticket Hypothesis. ICML.
       arXiv:1912.05671.
    .. [3] He, K., Zhang, X., Ren, S. and Sun, J. (2015). Delving Deep into
       Rectifiers: Surpassing Human-Level Performance on ImageNet
       Classification. ICCV. arXiv:1502.01852.
    """

    #: Output channels of each 3x3 convolution; ``'M'`` is a 2x2 max pool.
    channels = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                512, 512, 512, "M", 512, 512, 512)
    #: The output layer stays dense (OpenLTH's ``pruning_layers_to_ignore``).
    prunable_exclude = ("classifier.0.weight",)

    @classmethod
    def conv_plan(cls, height, width):
        return _vgg_plan(cls.channels)

    def _layers(self, act):
        plan = self.conv_plan(*self.input_shape[1:])
        self._check_plan(plan)
        in_ch = self.input_shape[0]
        layers = []
        for step in plan:
            if step[0] == "conv":
                layers += [nn.Conv2d(in_ch, step[1], 3, padding=1), nn.BatchNorm2d(step[1]),
                           act()]
                in_ch = step[1]
            else:
                layers.append(nn.MaxPool2d(2, stride=2))
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self.n_flat = in_ch
        self.classifier = nn.Sequential(nn.Linear(in_ch, self.n_classes))


# --------------------------------------------------------------------------
# Prunable layers
# --------------------------------------------------------------------------

def _weight_layers(module):
    """``[(name, layer)]`` of every Linear/Conv2d weight, in ``named_parameters`` order.

    A layer reparametrised by ``torch.nn.utils.prune`` stores its weight as
    the parameter ``weight_orig``; that name is then reported.
    """
    owners = {}
    for layer in module.modules():
        if isinstance(layer, PRUNABLE_LAYER_TYPES):
            param = layer._parameters.get("weight")
            if param is None:
                param = layer._parameters.get("weight_orig")
            if param is not None:
                owners[id(param)] = layer
    return [(name, owners[id(param)])
            for name, param in module.named_parameters()
            if id(param) in owners]


def excluded_weight_names(module, layers=None):
    """Weights that ``module`` (or any submodule) declares not prunable.

    A module lists them in its attribute ``prunable_exclude``: parameter names
    relative to that module (e.g. ``VGG16.prunable_exclude`` is its output
    layer's weight, which OpenLTH leaves dense). Returns the names relative
    to ``module``.

    Raises
    ------
    ValueError
        If a listed name is not the weight of one of its Linear/Conv2d layers.
    """
    if layers is None:
        layers = _weight_layers(module)
    known = {_strip_orig(name) for name, _ in layers}
    out = set()
    for prefix, sub in module.named_modules():
        names = getattr(sub, "prunable_exclude", ())
        for name in ((names,) if isinstance(names, str) else names):
            full = f"{prefix}.{name}" if prefix else name
            if full not in known:
                raise ValueError(
                    f"{type(sub).__name__}.prunable_exclude names {name!r}, which is not "
                    "the weight of one of its Linear/Conv2d layers.")
            out.add(full)
    return out


def _strip_orig(name):
    return name.removesuffix("_orig")


def _prunable_parameters(module):
    """``[(name, layer)]`` of prunable weights, in ``named_parameters`` order:
    every Linear/Conv2d weight but those excluded (:func:`excluded_weight_names`)."""
    layers = _weight_layers(module)
    excluded = excluded_weight_names(module, layers)
    return [(n, layer) for n, layer in layers if _strip_orig(n) not in excluded]


def prunable_parameter_names(module):
    """Names (as in ``module.named_parameters()``) of the prunable weights.

    These are the ``weight`` parameters of every ``nn.Linear`` and
    ``nn.Conv2d`` layer, in ``named_parameters`` order, but for those the
    module excludes (its ``prunable_exclude``, see
    :func:`excluded_weight_names`). The last Linear/Conv2d weight is the
    output layer.
    """
    return [name for name, _ in _prunable_parameters(module)]


def layer_kinds(module):
    """Map each prunable weight's parameter name to its kind.

    Returns an insertion-ordered ``dict`` (``named_parameters`` order) whose
    values are ``'conv'`` (``nn.Conv2d``), ``'fc'`` (``nn.Linear``) or
    ``'output'`` for the last Linear/Conv2d layer, whatever its type. Frankle &
    Carbin prune these at different rates (conv 10-15%, fc 20%, output 10%).
    Weights the module excludes from pruning (``prunable_exclude``, see
    :func:`excluded_weight_names`) are left out, and get no mask from the
    estimators; when that is the output layer, no weight is ``'output'``
    (the last prunable one keeps its kind).
    """
    layers = _weight_layers(module)
    excluded = excluded_weight_names(module, layers)
    kinds = {name: "conv" if isinstance(layer, nn.Conv2d) else "fc"
             for name, layer in layers if _strip_orig(name) not in excluded}
    if layers and layers[-1][0] in kinds:
        kinds[layers[-1][0]] = "output"
    return kinds


def multiply_adds(module, masks, example_input):
    """Multiply-adds per sample of every prunable layer: dense and kept.

    A weight costs one multiply-add per *output position* of its layer: once
    for a ``Linear`` layer on a flat input, ``H_out * W_out`` times for a
    convolution. The positions are counted by one forward pass of
    ``example_input`` (eval mode, no gradient) with a forward hook on every
    layer that owns a weight in ``masks``: a layer's output elements per
    sample divided by its output units (``weight.shape[0]``), summed over
    the calls of a layer that the forward uses several times. Bias additions
    are not counted. A pruned weight costs nothing, as in a sparse multiply;
    a structured mask (whole neurons or filters) therefore costs what its
    compact dense network costs.

    Parameters
    ----------
    module : torch.nn.Module
        The network (unchanged: its train/eval mode is restored and the hooks
        removed).
    masks : dict of str -> bool Tensor
        Keep-masks of the prunable weights (parameter names).
    example_input : Tensor
        Inputs as the module takes them (one sample is enough); their values
        do not matter.

    Returns
    -------
    macs : dict of str -> (int, int)
        Per weight in ``masks``: ``(dense, kept)`` multiply-adds per sample. A
        layer the forward does not use counts 0.

    See Also
    --------
    sklottery.LotteryTicketClassifier.size_report : Per-layer table of these
        counts.
    sklottery.strategies.scratch_b_epochs : The scratch-B budget, set by their
        totals.
    """
    layers = dict(module.named_modules())
    positions = {}
    n_samples = max(1, int(example_input.shape[0]))
    hooks = []
    for name, mask in masks.items():
        owner = name.rpartition(".")[0]
        units = max(1, int(mask.shape[0]))

        def count(mod, inputs, output, owner=owner, units=units):
            per_sample = output.numel() // (n_samples * units)
            positions[owner] = positions.get(owner, 0) + int(per_sample)

        if owner not in positions:
            positions[owner] = 0
            hooks.append(layers[owner].register_forward_hook(count))
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad():
            module(example_input)
    finally:
        module.train(was_training)
        for h in hooks:
            h.remove()
    out = {}
    for name, mask in masks.items():
        pos = positions[name.rpartition(".")[0]]
        out[name] = (int(mask.numel()) * pos, int(mask.sum()) * pos)
    return out


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------

#: Name -> module class. The estimator's ``module`` parameter accepts these
#: names or any ``nn.Module`` subclass taking ``n_features`` and ``n_classes``.
#: Lookup ignores case, ``-`` and ``_`` ('Conv-2', 'LeNet-5' work).
MODULES = {
    "mlp": MLP,
    "lenet300_100": MLP,
    "conv2": Conv2,
    "conv4": Conv4,
    "conv6": Conv6,
    "lenet5": LeNet5,
    "resnet20": ResNet20,  # He et al. 2016; Frankle et al. 2020
    "vgg16": VGG16,  # Simonyan & Zisserman 2015; Frankle et al. 2020
}


def _normalise_name(name):
    return name.lower().replace("-", "").replace("_", "")


def get_module_class(module):
    """Resolve ``module`` (a registry name or an ``nn.Module`` subclass).

    See Also
    --------
    MODULES : The registry of names.
    """
    if module is None:
        return MLP
    if isinstance(module, str):
        if module.lower() in MODULES:
            return MODULES[module.lower()]
        by_key = {_normalise_name(k): v for k, v in MODULES.items()}
        try:
            return by_key[_normalise_name(module)]
        except KeyError:
            raise ValueError(
                f"Unknown module name {module!r}; known names are "
                f"{sorted(MODULES)} (or pass an nn.Module subclass)."
            ) from None
    if isinstance(module, type) and issubclass(module, nn.Module):
        return module
    raise TypeError(
        "module must be None, a registered name or an nn.Module subclass, "
        f"got {module!r}."
    )
